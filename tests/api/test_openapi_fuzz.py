"""A fuzzer driven by /openapi.json: for every operation, requests made from its declared
parameters and bodies (and off-schema garbage: wrong types, huge strings, odd Unicode,
bytes that are not UTF-8), sent with no credentials, a valid token and a bad one, to one
app on the embedded default. Every answer must be declared for its operation, valid
against its schema, problem+json for every 4xx, and never a 5xx. The app is served by
the service's own runner (``make_runner``), so aiohttp's protocol-level answers are
checked too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from instastore.server.app import create_app, make_runner
from jsonschema import Draft202012Validator

from instastore.config import Settings

from .. import samples
from ..factories import PASSWORD
from ..openapi_check import Spec, send_blocking, violations

# A minute of CPU in all: the fast tier leaves these out (make test-fuzz runs them). Each
# takes 85-130 s under make test's load, past the api tier's 120 s: a bound of their own.
pytestmark = [pytest.mark.spec_fuzz, pytest.mark.timeout(600)]

EXAMPLES_PER_RUN = 15  # per operation and kind of credential: 27 x 3 runs, ~25 s on 2 cores
# Destructive operations go last, so the others meet the photos and the token alive.
LAST = ("deletePhoto", "restorePhoto", "logOut")
SAFE = "-._~"  # what quote() must leave alone in a path segment or query value

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "1e3",
        "0x10",
        "null",
        "true",
        "[]",
        "{}",
        "..",
        "../..",
        "%",
        "%00",
        "%2F",
        "\x00",
        "\u202e\u0041",
        "\ufeff",
        "ǅ",
        "😀",
        "²",
        "①",
        "٣",
        "9" * 30,
        "a/b",
        "a b",
        "'; drop table users; --",
    ]
)
# Off-schema text: wrong types spelled out, Unicode oddities (other scripts' digits,
# bidi overrides, NUL), huge strings.
GARBAGE_TEXT = st.one_of(
    ODD_TEXT,
    st.text(max_size=40),
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6),
    st.integers(-(2**80), 2**80).map(str),
    st.integers(0, 70_000).map(lambda n: "x" * n),
    st.just("9" * 5000),
)
# Bytes that are not UTF-8, among them a UTF-8-encoded surrogate (which Python's decoder refuses).
GARBAGE_BYTES = st.one_of(
    st.binary(max_size=20),
    st.just("\ud800".encode("utf-8", "surrogatepass")),
    st.just(b"\xff\xfe"),
    st.just(b"caf\xe9"),
)
# Strings with lone surrogates too: JSON can spell them (\ud800), UTF-8 cannot carry them.
ODD_STRINGS = st.text(max_size=20) | st.text(
    st.characters(categories=["Cs", "L", "N", "Cc"]), max_size=8
)
# Headers no operation declares but any client may send (short, and without control
# characters: aiohttp's parser refuses those before any route, which garbage elsewhere covers).
HEADER_TEXT = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=20)
EXTRA_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Expect": st.sampled_from(["100-continue", "200-ok", ""]) | HEADER_TEXT,
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "x-unknown"]),
        "Accept": st.sampled_from(["*/*", "application/json", "text/html", "image/avif"])
        | HEADER_TEXT,
        "Accept-Encoding": st.sampled_from(["gzip", "br", "identity;q=0", ""]),
        "Content-Type": HEADER_TEXT,
    },
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_STRINGS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def from_schema(spec: Spec, schema: dict[str, Any]) -> st.SearchStrategy:
    """Values valid against the subset of JSON Schema the spec uses."""
    schema = spec.resolve(schema)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        least, most = schema.get("minLength", 0), schema.get("maxLength", 40)
        if "pattern" in schema:
            pattern = schema["pattern"]  # anchored: the whole value; else: found within it
            whole = pattern.startswith("^") and pattern.endswith("$")
            return st.from_regex(pattern, fullmatch=whole).filter(lambda v: least <= len(v) <= most)
        return st.text(min_size=least, max_size=min(most, 40) or 1)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum", 2**31))
    if kind == "boolean":
        return st.booleans()
    if kind == "object":
        required = set(schema.get("required", ()))
        properties = {k: from_schema(spec, v) for k, v in schema.get("properties", {}).items()}
        return st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required},
        )
    raise AssertionError(f"the fuzzer does not know schema {schema}")


def text_or_bytes(value: Any) -> str | bytes:
    return (
        value
        if isinstance(value, bytes)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def encoded(value: str | bytes) -> str:
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote(raw, safe=SAFE)


class World:
    """What the fuzzer can aim at: real usernames, photos and their media secrets."""

    def __init__(self, usernames: list[str], photos: list[dict], token: str) -> None:
        self.usernames = usernames
        self.photo_ids = [p["id"] for p in photos]
        self.secrets = [url.split("/")[4] for p in photos for url in p["media"].values()]
        self.media_urls = [url for p in photos for url in p["media"].values()]
        self.token = token

    def param(self, spec: Spec, param: dict[str, Any]) -> st.SearchStrategy:
        """A parameter's value: a real one, one from its schema, or garbage (text or bytes)."""
        real = {"username": self.usernames, "photo_id": self.photo_ids, "secret": self.secrets}.get(
            param["name"]
        )
        choices = [from_schema(spec, param["schema"]), GARBAGE_TEXT, GARBAGE_BYTES]
        if real:
            choices.insert(0, st.sampled_from(real))
        return st.one_of(*choices).map(text_or_bytes)

    def credentials(self, kind: str) -> st.SearchStrategy:
        if kind == "none":
            return st.just({})
        if kind == "valid":
            return st.just({"Authorization": f"Bearer {self.token}"})
        bad = st.one_of(
            st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=30).map(
                lambda t: f"Bearer {t}"
            ),
            st.sampled_from(
                [
                    "Bearer",
                    "Bearer ",
                    "Basic YWxpY2U6c2VjcmV0",
                    "bearer x",
                    f"Token {self.token}",
                    f"Bearer {self.token}x",
                    "Bearer " + "t" * 5000,
                ]
            ),
            GARBAGE_BYTES.map(lambda b: b"Bearer " + b),
            st.text(max_size=20).map(
                lambda t: t.encode("utf-8").replace(b"\r", b"").replace(b"\n", b"")
            ),
        )
        return bad.map(lambda value: {"Authorization": value})


def json_bodies(spec: Spec, schema: dict[str, Any]) -> st.SearchStrategy:
    """(Content-Type, body): valid JSON objects, wrong types, any JSON, and bytes that are
    not JSON, not UTF-8, nested deep or too large."""
    valid = from_schema(spec, schema)
    wrong_types = valid.flatmap(
        lambda body: st.fixed_dictionaries({k: JSON_VALUES for k in body} | {"extra": JSON_VALUES})
    )
    as_json = st.one_of(valid, wrong_types, JSON_VALUES).map(lambda b: json.dumps(b).encode())
    raw = st.one_of(
        GARBAGE_BYTES,
        st.sampled_from(
            [
                b"",
                b"{",
                b'{"username": "\\ud800"}',
                b'"\\udfff"',
                b"[" * 2000 + b"]" * 2000,
                b'{"a": ' + b"1" * 5000 + b"}",
                b"{}" + b" " * 70_000,
            ]
        ),
        st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
    content_type = st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/json; charset=latin-1",
            "application/x-www-form-urlencoded",
        ]
    )
    return st.one_of(
        st.tuples(st.just("application/json"), as_json),
        st.tuples(content_type, st.one_of(as_json, raw)),
        st.tuples(st.just(None), as_json),
    )


BOUNDARY = "fuzzboundary7MA4YWxk"


def multipart(fields: dict[str, Any]) -> bytes:
    parts = []
    for name, value in fields.items():
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        disposition = f'form-data; name="{name}"' + ('; filename="f.bin"' if name == "file" else "")
        parts.append(
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def upload_bodies(spec: Spec, schema: dict[str, Any]) -> st.SearchStrategy:
    """(Content-Type, body) of an upload: a real picture, random bytes, garbage fields."""
    files = st.one_of(
        st.sampled_from([samples.image("PNG", (32, 32)), samples.image("JPEG", (40, 30))]),
        st.binary(max_size=200),
    )
    fields = st.fixed_dictionaries(
        {
            "file": files,
            "title": st.one_of(from_schema(spec, schema["properties"]["title"]), GARBAGE_TEXT),
        },
        optional={
            "visibility": st.one_of(
                st.sampled_from(["public", "followers", "private"]), GARBAGE_TEXT
            ),
            "other": st.text(max_size=5),
        },
    )
    form = f"multipart/form-data; boundary={BOUNDARY}"
    return st.one_of(
        st.tuples(st.just(form), fields.map(multipart)),
        st.tuples(
            st.sampled_from([form, "multipart/form-data", "application/json"]), GARBAGE_BYTES
        ),
    )


def requests(
    spec: Spec, world: World, method: str, template: str, operation: dict, credentials: str
):
    """Requests for one operation: (method, target, headers, body)."""
    params = operation.get("parameters", [])
    path_params = {p["name"]: world.param(spec, p) for p in params if p["in"] == "path"}
    query_params = {p["name"]: world.param(spec, p) for p in params if p["in"] == "query"}
    header_params = {p["name"]: world.param(spec, p) for p in params if p["in"] == "header"}
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        bodies = json_bodies(spec, content["application/json"]["schema"])
    elif "multipart/form-data" in content:
        bodies = upload_bodies(spec, spec.resolve(content["multipart/form-data"]["schema"]))
    else:
        bodies = st.just((None, None))

    @st.composite
    def made_path(draw) -> str:
        path = template
        for name, strategy in path_params.items():
            path = path.replace("{" + name + "}", encoded(draw(strategy)) or "x")
        return path

    paths = made_path()
    if template.startswith("/v1/media/"):  # a real media URL, to reach ranges and ETags
        paths = st.one_of(st.sampled_from(world.media_urls), paths)

    @st.composite
    def one(draw) -> tuple[str, str, dict, bytes | None]:
        path = draw(paths)
        query = draw(st.fixed_dictionaries({}, optional=query_params))
        target = path + (
            "?" + "&".join(f"{k}={encoded(v)}" for k, v in query.items()) if query else ""
        )
        headers = {
            **draw(EXTRA_HEADERS),
            **draw(st.fixed_dictionaries({}, optional=header_params)),
            **draw(world.credentials(credentials)),
        }
        content_type, body = draw(bodies)
        if content_type:
            headers["Content-Type"] = content_type
        headers = {
            k: v.replace("\r", "").replace("\n", "")
            if isinstance(v, str)
            else v.replace(b"\r", b"").replace(b"\n", b"")
            for k, v in headers.items()
        }
        return method, target, headers, body

    return one()


# A declared refusal, not a fault: oEmbed's format=xml (oEmbed 1.0 says 501); violations()
# checks that the operation declares it.
NOT_IMPLEMENTED = 501
# A cursor is the service's own sealed token: a schema-valid one it did not issue for
# the list is refused (400) as a forgery, so the schema-valid requests carry none.
ISSUED_ONLY = ("cursor",)
# Operations whose schema-valid requests would end the token the others use.
TOKEN_ENDERS = ("logOut", "logOutEverywhere")


def as_sent(schema: dict[str, Any], raw: str) -> Any:
    """A query value as the schema reads it: an integer schema reads decimal text."""
    digits = raw.lstrip("-")
    # past 100 digits int() may refuse it; as text it is as invalid
    if schema.get("type") == "integer" and digits.isascii() and digits.isdigit() and len(raw) < 100:
        return int(raw)
    return raw


def constrained(schema: dict[str, Any]) -> bool:
    """Whether some value of its kind breaks ``schema`` (a plain string takes any text)."""
    return bool({"enum", "const", "pattern", "minLength", "maxLength", "minimum"} & set(schema))


class Valid:
    """Requests the spec calls valid, and those with exactly one part that breaks it."""

    def __init__(self, spec: Spec, world: World) -> None:
        self.spec = spec
        self.world = world

    def param(self, param: dict[str, Any]) -> st.SearchStrategy:
        real = {
            # not the token's own user: following oneself is a 400 the schema cannot state
            "username": self.world.usernames[1:],
            "photo_id": self.world.photo_ids,
            "secret": self.world.secrets,
        }.get(param["name"])
        schema = from_schema(self.spec, param["schema"])
        return (st.sampled_from(real) | schema) if real else schema

    def invalid_param(self, param: dict[str, Any]) -> st.SearchStrategy:
        schema = self.spec.resolve(param["schema"])
        check = Draft202012Validator(schema)
        values = GARBAGE_TEXT
        if param["in"] == "header":  # what a header line can carry
            values = values.filter(lambda raw: raw.isascii() and raw.isprintable())
        return values.filter(lambda raw: not check.is_valid(as_sent(schema, raw)))

    def body(self, operation: dict) -> st.SearchStrategy:
        """(Content-Type, fields) of a valid body; fields is None with no body."""
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            schema = self.spec.resolve(content["application/json"]["schema"])
            return st.tuples(st.just("application/json"), from_schema(self.spec, schema))
        if "multipart/form-data" in content:
            schema = self.spec.resolve(content["multipart/form-data"]["schema"])
            title = from_schema(self.spec, schema["properties"]["title"])
            fields = st.fixed_dictionaries(
                {
                    "file": st.sampled_from(
                        [samples.image("PNG", (32, 32)), samples.image("JPEG", (40, 30))]
                    ),
                    "title": title,
                },
                optional={
                    "visibility": st.sampled_from(schema["properties"]["visibility"]["enum"])
                },
            )
            return st.tuples(st.just("multipart/form-data"), fields)
        return st.just((None, None))

    def invalid_field(self, operation: dict, fields: dict) -> st.SearchStrategy:
        """A name and a value for one field that breaks its schema (or is not declared)."""
        media = next(iter(operation["requestBody"]["content"]))
        schema = self.spec.resolve(operation["requestBody"]["content"][media]["schema"])
        properties = schema["properties"]
        names = [n for n in properties if n != "file"] + ["undeclared"]

        def bad(name: str) -> st.SearchStrategy:
            if name == "undeclared":
                return JSON_VALUES.map(lambda v: (name, v))
            check = Draft202012Validator(properties[name])
            values = GARBAGE_TEXT if media != "application/json" else JSON_VALUES | GARBAGE_TEXT
            return values.filter(lambda v: not check.is_valid(v)).map(lambda v: (name, v))

        return st.sampled_from(names).flatmap(bad)

    def requests(self, method: str, template: str, operation: dict, broken: bool):
        params = [p for p in operation.get("parameters", []) if p["name"] not in ISSUED_ONLY]
        corruptible = [p for p in params if constrained(self.spec.resolve(p["schema"]))]

        # Built once: hypothesis expands a character class of a pattern when it builds
        # its strategy, seconds for the wide ones.
        required = st.fixed_dictionaries(
            {p["name"]: self.param(p) for p in params if p["required"]},
            optional={p["name"]: self.param(p) for p in params if not p["required"]},
        )
        bodies = self.body(operation)
        invalid = {p["name"]: self.invalid_param(p) for p in corruptible}
        has_body = "requestBody" in operation
        targets = [p["name"] for p in corruptible] + (["body"] if has_body else [])

        @st.composite
        def one(draw) -> tuple[str, str, dict, bytes | None]:
            values = draw(required)
            content_type, fields = draw(bodies)
            if broken:
                target = draw(st.sampled_from(targets))
                if target == "body":
                    name, value = draw(self.invalid_field(operation, fields))
                    fields = {**fields, name: value}
                else:
                    values[target] = draw(invalid[target])
            return self.assemble(method, template, params, values, content_type, fields)

        return one()

    def assemble(self, method, template, params, values, content_type, fields):
        path, query, headers = template, [], {"Authorization": f"Bearer {self.world.token}"}
        for p in params:
            if p["name"] not in values:
                continue
            value = text_or_bytes(values[p["name"]])
            if p["in"] == "path":
                path = path.replace("{" + p["name"] + "}", encoded(value))
            elif p["in"] == "query":
                query.append(f"{p['name']}={encoded(value)}")
            elif isinstance(value, str) and value.isascii() and value.isprintable():
                headers[p["name"]] = value
        body = None
        if content_type == "application/json":
            headers["Content-Type"] = content_type
            body = json.dumps(fields).encode()
        elif content_type:
            headers["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
            body = multipart(fields)
        return method, path + ("?" + "&".join(query) if query else ""), headers, body


class Fuzzer:
    """Runs hypothesis over each operation of the spec against one server."""

    def __init__(self, spec: Spec, address: tuple[str, int], world: World) -> None:
        self.spec = spec
        self.address = address
        self.world = world

    def check(self, request: tuple[str, str, dict, bytes | None]) -> None:
        exchange = send_blocking(self.address, *request)
        problems = violations(self.spec, exchange)
        if exchange.status >= 500 and exchange.status != NOT_IMPLEMENTED:
            problems.append(f"a {exchange.status}")
        if 400 <= exchange.status < 500 and exchange.content_type != "application/problem+json":
            problems.append(f"a {exchange.status} that is not problem+json")
        assert not problems, "\n".join(problems) + "\n    " + exchange.describe()

    def operation(self, method: str, template: str, operation: dict, credentials: str) -> None:
        """Hypothesis over one operation and kind of credential; raises at the first violation."""
        strategy = requests(self.spec, self.world, method, template, operation, credentials)
        run = settings(
            max_examples=EXAMPLES_PER_RUN, database=None, suppress_health_check=list(HealthCheck)
        )(given(strategy)(self.check))
        run()

    def check_valid(self, request: tuple[str, str, dict, bytes | None]) -> None:
        """A schema-valid request is accepted: never a 400 or 422 (a 404, 403 or 409
        the spec declares is an answer about the data, not the request)."""
        exchange = send_blocking(self.address, *request)
        problems = violations(self.spec, exchange)
        if exchange.status in (400, 422) or (
            exchange.status >= 500 and exchange.status != NOT_IMPLEMENTED
        ):
            problems.append(f"a schema-valid request answered {exchange.status}")
        assert not problems, "\n".join(problems) + "\n    " + exchange.describe()

    def check_invalid(self, request: tuple[str, str, dict, bytes | None]) -> None:
        """A request with one part that breaks the spec is refused with a 4xx problem."""
        exchange = send_blocking(self.address, *request)
        problems = violations(self.spec, exchange)
        if not 400 <= exchange.status < 500:
            problems.append(f"a schema-invalid request answered {exchange.status}")
        elif request[0] != "HEAD" and exchange.content_type != "application/problem+json":
            problems.append(f"a {exchange.status} that is not problem+json")
        assert not problems, "\n".join(problems) + "\n    " + exchange.describe()

    def against_schema(self, broken: bool) -> list[str]:
        """Schema-valid requests (``broken``: each with one invalid part) to every operation
        that keeps the token alive, the destructive ones last."""
        failures = []
        valid = Valid(self.spec, self.world)
        for method, template, operation in self.ordered():
            if operation["operationId"] in TOKEN_ENDERS:
                continue
            if (
                broken
                and not any(
                    constrained(self.spec.resolve(p["schema"]))
                    for p in operation.get("parameters", [])
                    if p["name"] not in ISSUED_ONLY
                )
                and "requestBody" not in operation
            ):
                continue
            strategy = valid.requests(method, template, operation, broken)
            check = self.check_invalid if broken else self.check_valid
            run = settings(
                max_examples=EXAMPLES_PER_RUN,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(given(strategy)(check))
            try:
                run()
            except AssertionError as exc:
                kind = "invalid" if broken else "valid"
                failures.append(f"{operation['operationId']} [schema-{kind}]: {exc}")
        return failures

    def ordered(self) -> list[tuple[str, str, dict]]:
        return sorted(
            self.spec.operations(),
            key=lambda o: o[2]["operationId"] in LAST and LAST.index(o[2]["operationId"]) + 1,
        )

    def all(self) -> list[str]:
        """A failure (shrunk by hypothesis) per operation and kind of credential that has one."""
        failures = []
        for method, template, operation in self.ordered():
            for credentials in ("none", "bad", "valid"):
                try:
                    self.operation(method, template, operation, credentials)
                except AssertionError as exc:
                    failures.append(f"{operation['operationId']} [{credentials}]: {exc}")
        return failures


@contextlib.contextmanager
def serving(settings_: Settings) -> Iterator[tuple[str, int]]:
    """The app on its own event loop in a thread, on a free local port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-app")
    thread.start()
    runner = make_runner(create_app(settings_), access_log=None)
    sock = socket.create_server(("127.0.0.1", 0))

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    try:
        run(runner.setup())
        run(web.SockSite(runner, sock).start())
        yield sock.getsockname()[:2]
    finally:
        run(runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        sock.close()


def call(
    address, method: str, target: str, headers: dict, body: bytes | None = None, *, json_body=None
) -> dict:
    """A setup request that must succeed; its JSON answer."""
    if json_body is not None:
        headers, body = (
            {**headers, "Content-Type": "application/json"},
            json.dumps(json_body).encode(),
        )
    exchange = send_blocking(address, method, target, headers, body)
    assert exchange.status in (200, 201), exchange.describe()
    return json.loads(exchange.response_body)


def populate(address) -> World:
    """Two users (one private) and a photo and a video, to aim at."""
    names, token = [], ""
    for private in (False, True):
        name = f"u{uuid.uuid4().hex[:12]}"
        call(address, "POST", "/v1/users", {}, json_body={"username": name, "password": PASSWORD})
        session = call(
            address, "POST", "/v1/sessions", {}, json_body={"username": name, "password": PASSWORD}
        )
        call(
            address,
            "PATCH",
            "/v1/me",
            {"Authorization": f"Bearer {session['token']}"},
            json_body={"private": private},
        )
        names.append(name)
        token = token or session["token"]
    owner = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    photos = [
        call(
            address,
            "POST",
            "/v1/photos",
            owner,
            multipart({"title": "a cat", "file": samples.image("PNG", (48, 48))}),
        ),
        call(
            address,
            "POST",
            "/v1/photos",
            owner,
            multipart(
                {
                    "title": "a clip",
                    "visibility": "followers",
                    "file": samples.video("mp4", "h264"),
                }
            ),
        ),
    ]
    return World(names, photos, token)


def test_fuzz_every_operation_from_the_spec(embedded_settings):
    """Not an async test: the app runs on its own loop in a thread while hypothesis drives
    it from this one, so the event-loop watchdog (which would count the fuzzer's two
    thousand connections' worth of asyncio debug overhead on a loaded machine) is not on;
    the handlers fuzzed here run under the watchdog in the other HTTP tests."""
    with serving(embedded_settings) as address:
        spec = Spec(call(address, "GET", "/openapi.json", {}))
        fuzzer = Fuzzer(spec, address, populate(address))
        failures = fuzzer.all()
    assert not failures, "\n\n".join(failures)


def test_the_service_takes_what_the_spec_calls_valid_and_refuses_the_rest(embedded_settings):
    """What schemathesis's positive and negative checks cover, on the embedded store: for
    every operation, requests drawn from its declared parameters and bodies are accepted
    (no 400 or 422), each of them with one parameter or field that breaks its schema is
    refused with a 4xx problem, and every answer is declared, with its schema, status,
    headers and content type."""
    with serving(embedded_settings) as address:
        spec = Spec(call(address, "GET", "/openapi.json", {}))
        fuzzer = Fuzzer(spec, address, populate(address))
        failures = fuzzer.against_schema(broken=False) + fuzzer.against_schema(broken=True)
    assert not failures, "\n\n".join(failures)

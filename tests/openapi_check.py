"""Checks one HTTP exchange against /openapi.json: the status is declared for the
operation, the body matches the schema declared for its content type, the declared
headers are there, and every JSON answer is sent nosniff and no-store.

Shared by the live-session test (``test_openapi.py``) and the fuzzer
(``test_openapi_fuzz.py``). ``KNOWN_FAILURES`` lists the violations that other branches
of issue 10 fix; each is pinned by an xfail(strict=True) test, so the entry is deleted
when its fix merges.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from jsonschema import Draft202012Validator

JSON_TYPES = ("application/json", "application/problem+json")
PASSWORD = "correct horse battery"


@dataclass
class Exchange:
    """What was sent (enough to replay it) and what came back."""

    method: str
    target: str  # the request target as sent: path and query, percent-encoded
    headers: dict[str, str | bytes] = field(default_factory=dict)
    body: bytes | None = None
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    response_body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def content_type(self) -> str:
        return self.response_headers.get("content-type", "").partition(";")[0].strip().lower()

    def describe(self) -> str:
        sent = {k: (v if isinstance(v, str) else repr(v)) for k, v in self.headers.items()}
        body = repr(self.body[:300]) if self.body else ""
        return (f"{self.method} {self.target[:300]} headers={sent} body={body} -> {self.status} "
                f"{self.content_type} {self.response_body[:300]!r}")


@dataclass(frozen=True)
class KnownFailure:
    """A violation another engineer's branch fixes: ``matches`` recognises an exchange
    that shows it; ``request`` reproduces it exactly."""

    name: str
    reason: str
    request: Exchange
    matches: Callable[[Exchange], bool]


def _server_error(exchange: Exchange) -> bool:
    return exchange.status == 500


def _has_unicode_digit(text: str) -> bool:
    return any(c.isdigit() and not c.isascii() for c in unquote(text, errors="surrogateescape"))


def _query_value(exchange: Exchange, name: str) -> str | None:
    for pair in exchange.target.partition("?")[2].split("&"):
        key, _, value = pair.partition("=")
        if unquote(key) == name:
            return unquote(value, errors="surrogateescape")
    return None


def _header(exchange: Exchange, name: str) -> str | bytes | None:
    return next((v for k, v in exchange.headers.items() if k.lower() == name.lower()), None)


def _not_utf8(value: str | bytes | None) -> bool:
    try:
        return isinstance(value, bytes) and not value.decode("utf-8")
    except UnicodeDecodeError:
        return True


def _lone_surrogates(body: bytes | None) -> bool:
    """A JSON body with a string (or key) that has a surrogate code point of its own."""
    try:
        strings = [json.loads(body or b"null")]
    except (ValueError, RecursionError):
        return False
    while strings:
        value = strings.pop()
        if isinstance(value, dict):
            strings += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            strings += value
        elif isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
            return True
    return False


def _text(value: str | bytes | None) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else (value or "")


def _long_number(value: str | bytes | None) -> bool:
    """Over the 4,300 digits int() converts (sys.get_int_max_str_digits)."""
    return bool(re.search(r"[0-9]{4300,}", _text(value)))


# The sample request of each known failure. Ids are made up: the failure comes before
# any lookup.
_PHOTO = "/v1/photos/%C2%B2"
KNOWN_FAILURES = [
    KnownFailure(
        "unicode-digit-id", "ids.parse_id: int('²') raises ValueError -> 500 text/plain (issue 10 item 15)",
        Exchange("GET", _PHOTO),
        lambda e: _server_error(e) and _has_unicode_digit(e.path),
    ),
    KnownFailure(
        "unicode-digit-limit", "handlers/common.limit: int('²') raises ValueError -> 500 (issue 10 item 15)",
        Exchange("GET", "/v1/search/photos?q=cat&limit=%C2%B2"),
        lambda e: _server_error(e) and _has_unicode_digit(_text(_query_value(e, "limit"))),
    ),
    KnownFailure(
        "long-number-limit", "handlers/common.limit: int() of over 4,300 digits raises ValueError -> 500 (item 15)",
        Exchange("GET", "/v1/search/photos?q=cat&limit=" + "9" * 5000),
        lambda e: _server_error(e) and _long_number(_query_value(e, "limit")),
    ),
    KnownFailure(
        "range-digits", "media.parse_range: int() of '²' or of over 4,300 digits -> 500 (issue 10 item 15)",
        Exchange("GET", "/v1/media/{photo_id}/{secret}/thumb", {"Range": "bytes=0-" + "9" * 5000}),
        lambda e: _server_error(e) and (_has_unicode_digit(_text(_header(e, "Range")))
                                        or _long_number(_header(e, "Range"))),
    ),
    KnownFailure(
        "authorization-not-utf8", "auth middleware: a token that is not UTF-8 fails in .encode() -> 500 (item 15)",
        Exchange("GET", "/healthz", {"Authorization": b"Bearer \xed\xa0\x80"}),
        lambda e: _server_error(e) and _not_utf8(_header(e, "Authorization")),
    ),
    KnownFailure(
        "json-lone-surrogate", "a lone surrogate in a JSON string reaches argon2/SQLite -> 500 (item 15)",
        Exchange("POST", "/v1/sessions", {"Content-Type": "application/json"},
                 b'{"username": "alice", "password": "\\ud800\\ud800\\ud800\\ud800"}'),
        lambda e: _server_error(e) and _lone_surrogates(e.body),
    ),
    KnownFailure(
        "json-deep-nesting", "json_body: deeply nested JSON raises RecursionError -> 500 (issue 10 item 15)",
        Exchange("POST", "/v1/users", {"Content-Type": "application/json"}, b"[" * 20_000 + b"]" * 20_000),
        lambda e: _server_error(e) and e.body is not None and e.body.count(b"[") + e.body.count(b"{") > 500,
    ),
    KnownFailure(
        "json-bogus-charset", "json_body: an unknown charset raises LookupError -> 500 (issue 10 item 15)",
        Exchange("POST", "/v1/sessions", {"Content-Type": "application/json; charset=bogus"}, b"{}"),
        lambda e: _server_error(e) and "charset" in str(_header(e, "Content-Type") or "").lower(),
    ),
    KnownFailure(
        "body-content-encoding", "json_body and upload: a body that does not decode per its Content-Encoding raises "
        "RequestPayloadError -> 500 (issue 10 item 15)",
        Exchange("POST", "/v1/sessions", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, b"{}"),
        lambda e: _server_error(e) and bool(_header(e, "Content-Encoding")),
    ),
    KnownFailure(
        "aiohttp-own-400", "aiohttp's own 400s (a malformed or oversized header) are text/plain (issue 10 item 15)",
        Exchange("GET", "/healthz", {"X-Long": "x" * 9000}),
        lambda e: e.status == 400 and e.content_type == "text/plain",
    ),
    KnownFailure(
        "expect-unmatched-url", "an unknown Expect on a URL no route matches: aiohttp's text/plain 417, before any "
        "middleware (routed URLs ignore it: routes.expect); the class of aiohttp's own 400s (item 15)",
        Exchange("GET", "/v1/nothing-here", {"Expect": "200-ok"}),
        lambda e: e.status == 417 and e.content_type != "application/problem+json",
    ),
    KnownFailure(
        "media-head", "media.media: HEAD sets content_length on a Response -> RuntimeError, 500 (the media branch)",
        Exchange("HEAD", "/v1/media/{photo_id}/{secret}/thumb"),
        lambda e: _server_error(e) and e.method == "HEAD" and e.path.startswith("/v1/media/"),
    ),
    KnownFailure(
        "media-416-body", "a 416 answers an empty body typed as the media, not a problem (the media branch)",
        Exchange("GET", "/v1/media/{photo_id}/{secret}/thumb", {"Range": "bytes=999999999-"}),
        lambda e: e.status == 416 and e.content_type != "application/problem+json",
    ),
]


def known_failure(exchange: Exchange) -> KnownFailure | None:
    return next((k for k in KNOWN_FAILURES if k.matches(exchange)), None)


class Spec:
    """/openapi.json, with the lookups the checks need."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._validators: dict[int, Draft202012Validator] = {}
        self._templates = [
            # aiohttp's own default pattern of a {name} in a route
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^{}/]+", path) + "$"), path) for path in document["paths"]
        ]

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self._pointer(node["$ref"])
        return node

    def _pointer(self, reference: str) -> Any:
        node: Any = self.document
        for part in reference.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """(path template, operation) of a request, or None if the spec has no such operation.
        Matched as aiohttp does: on the decoded path, an encoded slash staying a character."""
        path = unquote(re.sub("%2[fF]", "%252F", path), errors="surrogateescape")
        for pattern, template in self._templates:
            if pattern.match(path):
                found = self.document["paths"][template].get(method.lower())
                return (template, found) if found else None
        return None

    def operations(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(method.upper(), path, op)
                for path, ops in self.document["paths"].items() for method, op in ops.items()]

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        """A validator of a schema found in the spec; its $refs resolve in the spec."""
        key = id(schema)
        if key not in self._validators:
            self._validators[key] = Draft202012Validator({"allOf": [schema], "components": self.document["components"]})
        return self._validators[key]


def _media_type_matches(declared: str, actual: str) -> bool:
    if declared.endswith("/*"):
        return actual.startswith(declared[:-1])
    return declared == actual


def violations(spec: Spec, exchange: Exchange) -> list[str]:
    """Everything about this exchange that breaks the spec or the header rules."""
    found = spec.operation(exchange.method, exchange.path)
    if found is None:
        return check_unrouted(exchange)
    template, operation = found
    where = f"{exchange.method} {template}"
    problems: list[str] = []
    declared = operation["responses"].get(str(exchange.status))
    if declared is None:
        return [f"{where}: status {exchange.status} is not declared"]
    declared = spec.resolve(declared)
    headers = exchange.response_headers
    for name, header in declared.get("headers", {}).items():
        if spec.resolve(header).get("required") and name.lower() not in headers:
            problems.append(f"{where} {exchange.status}: header {name} is missing")
    content = declared.get("content")
    if exchange.method == "HEAD" or exchange.status in (204, 304):
        if exchange.response_body:
            problems.append(f"{where} {exchange.status}: a body where none may be")
        return problems + check_headers(exchange)
    if not content:
        if exchange.response_body:
            problems.append(f"{where} {exchange.status}: a body where none is declared")
        return problems + check_headers(exchange)
    media = next((m for m in content if _media_type_matches(m, exchange.content_type)), None)
    if media is None:
        return problems + [f"{where} {exchange.status}: content type {exchange.content_type!r} not in {list(content)}"]
    if exchange.content_type in JSON_TYPES:
        problems += check_json(spec, where, exchange, content[media]["schema"])
    return problems + check_headers(exchange)


def check_json(spec: Spec, where: str, exchange: Exchange, schema: dict[str, Any]) -> list[str]:
    try:
        body = json.loads(exchange.response_body)
    except ValueError as exc:
        return [f"{where} {exchange.status}: the body is not JSON: {exc}"]
    errors = [f"{where} {exchange.status}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in spec.validator(schema).iter_errors(body)]
    if exchange.content_type == "application/problem+json" and body.get("status") != exchange.status:
        errors.append(f"{where} {exchange.status}: the problem says status {body.get('status')}")
    return errors


def check_headers(exchange: Exchange) -> list[str]:
    """nosniff on everything; no-store on every JSON answer."""
    headers = exchange.response_headers
    problems = []
    if headers.get("x-content-type-options") != "nosniff":
        problems.append(f"{exchange.method} {exchange.path} {exchange.status}: no X-Content-Type-Options: nosniff")
    if exchange.content_type in JSON_TYPES and headers.get("cache-control") != "no-store":
        problems.append(f"{exchange.method} {exchange.path} {exchange.status}: JSON without Cache-Control: no-store")
    return problems


def check_unrouted(exchange: Exchange) -> list[str]:
    """A URL or method the spec does not have: a 404 or 405 problem (405 with Allow)."""
    problems = []
    if exchange.status not in (404, 405) or exchange.content_type != "application/problem+json":
        problems.append(f"{exchange.method} {exchange.path}: not in the spec, answered {exchange.status} "
                        f"{exchange.content_type}")
    if exchange.status == 405 and "allow" not in exchange.response_headers:
        problems.append(f"{exchange.method} {exchange.path}: 405 without Allow")
    return problems + check_headers(exchange)


class Session:
    """An aiohttp test client that records every exchange and checks it against the spec."""

    def __init__(self, client, spec: Spec) -> None:
        self.client = client
        self.spec = spec
        self.seen: list[Exchange] = []

    async def call(self, method: str, target: str, headers: dict | None = None, *, json_body=None,
                   data=None, raw: bytes | None = None) -> Exchange:
        headers = dict(headers or {})
        body = raw
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        resp = await self.client.request(method, target, headers=headers, data=data if data is not None else body)
        exchange = Exchange(method, target, headers, body, resp.status,
                            {k.lower(): v for k, v in resp.headers.items()}, await resp.read())
        self.seen.append(exchange)
        return exchange

    async def expect(self, status: int, method: str, target: str, headers: dict | None = None, **kw) -> Exchange:
        """A call that must answer ``status``, unless it shows a known failure."""
        exchange = await self.call(method, target, headers, **kw)
        assert exchange.status == status or known_failure(exchange), exchange.describe()
        return exchange

    def json(self, exchange: Exchange):
        return json.loads(exchange.response_body)

    async def user(self, private: bool = False) -> tuple[str, dict]:
        name = f"u{uuid.uuid4().hex[:12]}"
        await self.expect(201, "POST", "/v1/users", json_body={"username": name, "password": PASSWORD})
        token = self.json(await self.expect(201, "POST", "/v1/sessions",
                                            json_body={"username": name, "password": PASSWORD}))["token"]
        headers = {"Authorization": f"Bearer {token}"}
        if private:
            await self.expect(200, "PATCH", "/v1/me", headers, json_body={"private": True})
        return name, headers

    async def upload(self, status: int, headers: dict, data: bytes, title: str = "a cat", **fields) -> Exchange:
        form = aiohttp.FormData()
        form.add_field("title", title)
        for key, value in fields.items():
            form.add_field(key, value)
        form.add_field("file", io.BytesIO(data), filename="f.bin", content_type="application/octet-stream")
        return await self.expect(status, "POST", "/v1/photos", headers, data=form)

    def report(self) -> list[str]:
        """Every exchange's violations, except those of a known failure another branch fixes."""
        return [f"{v}\n    {e.describe()}" for e in self.seen if not known_failure(e) for v in violations(self.spec, e)]

    async def send_raw(self, method: str, target: str, headers: dict, body: bytes | None) -> Exchange:
        """Send a request byte for byte (header values that are not UTF-8 included)."""
        host, port = self.client.server.host, self.client.server.port
        reader, writer = await asyncio.open_connection(host, port)
        chunks = []
        try:
            writer.write(request_bytes(method, target, host, headers, body))
            await writer.drain()
            while chunk := await reader.read(2**16):
                chunks.append(chunk)
        except ConnectionResetError:  # the server may answer and close before reading a body
            pass
        writer.close()
        exchange = parse_response(Exchange(method, target, headers, body), b"".join(chunks))
        self.seen.append(exchange)
        return exchange


def request_bytes(method: str, target: str, host: str, headers: dict, body: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode(), f"Host: {host}".encode(), b"Connection: close"]
    for name, value in headers.items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    if body is not None:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def parse_response(exchange: Exchange, raw: bytes) -> Exchange:
    """The exchange with the answer of a Connection: close request (no answer: status 0),
    after any interim 1xx."""
    head, _, exchange.response_body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    exchange.status = int(status_line.split()[1]) if status_line else 0
    if 100 <= exchange.status < 200:
        return parse_response(exchange, exchange.response_body)
    for line in header_lines:
        name, _, value = line.partition(":")
        exchange.response_headers[name.strip().lower()] = value.strip()
    return exchange


def send_blocking(address: tuple[str, int], method: str, target: str, headers: dict, body: bytes | None) -> Exchange:
    """``Session.send_raw`` from a thread, off the event loop."""
    chunks = []
    with socket.create_connection(address, timeout=60) as sock:
        try:
            sock.sendall(request_bytes(method, target, address[0], headers, body))
            while chunk := sock.recv(2**16):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return parse_response(Exchange(method, target, headers, body), b"".join(chunks))

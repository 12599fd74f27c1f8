"""Checks one HTTP exchange against /openapi.json: the status is declared for the
operation, the body matches the schema declared for its content type, the declared
headers are there, and every JSON answer is sent nosniff and no-store (unless its operation
declares a Cache-Control of its own).

Shared by the live-session test (``test_openapi.py``) and the fuzzer
(``test_openapi_fuzz.py``).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from jsonschema import Draft202012Validator

from .factories import PASSWORD

JSON_TYPES = ("application/json", "application/problem+json")


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
        return (
            f"{self.method} {self.target[:300]} headers={sent} body={body} -> {self.status} "
            f"{self.content_type} {self.response_body[:300]!r}"
        )


class Spec:
    """/openapi.json, with the lookups the checks need."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._validators: dict[int, Draft202012Validator] = {}
        self._templates = [
            # aiohttp's own default pattern of a {name} in a route
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^{}/]+", path) + "$"), path)
            for path in document["paths"]
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
        return [
            (method.upper(), path, op)
            for path, ops in self.document["paths"].items()
            for method, op in ops.items()
        ]

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        """A validator of a schema found in the spec; its $refs resolve in the spec."""
        key = id(schema)
        if key not in self._validators:
            self._validators[key] = Draft202012Validator(
                {"allOf": [schema], "components": self.document["components"]}
            )
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
        if exchange.response_body and not _unparsed(exchange):
            problems.append(f"{where} {exchange.status}: a body where none may be")
        return problems + check_headers(exchange, declared)
    if not content:
        if exchange.response_body:
            problems.append(f"{where} {exchange.status}: a body where none is declared")
        return problems + check_headers(exchange, declared)
    media = next((m for m in content if _media_type_matches(m, exchange.content_type)), None)
    if media is None:
        return [
            *problems,
            f"{where} {exchange.status}: "
            f"content type {exchange.content_type!r} not in {list(content)}",
        ]
    if exchange.content_type in JSON_TYPES:
        problems += check_json(spec, where, exchange, content[media]["schema"])
    return problems + check_headers(exchange, declared)


def check_json(spec: Spec, where: str, exchange: Exchange, schema: dict[str, Any]) -> list[str]:
    try:
        body = json.loads(exchange.response_body)
    except ValueError as exc:
        return [f"{where} {exchange.status}: the body is not JSON: {exc}"]
    errors = [
        f"{where} {exchange.status}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in spec.validator(schema).iter_errors(body)
    ]
    if (
        exchange.content_type == "application/problem+json"
        and body.get("status") != exchange.status
    ):
        errors.append(f"{where} {exchange.status}: the problem says status {body.get('status')}")
    return errors


def check_headers(exchange: Exchange, declared: dict[str, Any] | None = None) -> list[str]:
    """nosniff on everything; no-store on every JSON answer but one whose ``declared``
    response states a Cache-Control of its own (oEmbed: the same for every caller)."""
    headers = exchange.response_headers
    problems = []
    if headers.get("x-content-type-options") != "nosniff":
        problems.append(
            f"{exchange.method} {exchange.path} {exchange.status}: "
            "no X-Content-Type-Options: nosniff"
        )
    own = "Cache-Control" in (declared or {}).get("headers", {})
    if (
        exchange.content_type in JSON_TYPES
        and not own
        and headers.get("cache-control") != "no-store"
    ):
        problems.append(
            f"{exchange.method} {exchange.path} {exchange.status}: "
            "JSON without Cache-Control: no-store"
        )
    return problems


def _unparsed(exchange: Exchange) -> bool:
    """A request the server could not parse (so it cannot know the method was HEAD)."""
    return exchange.status == 400 and b"/problems/malformed-request" in exchange.response_body


def check_unrouted(exchange: Exchange) -> list[str]:
    """A URL or method the spec does not have: a 404 or 405 problem (405 with Allow), or
    an error that comes before routing (a malformed request or token, a refused
    expectation, shedding): a 4xx or 503 problem."""
    problems = []
    before_routing = 400 <= exchange.status < 500 or exchange.status == 503
    if not before_routing or exchange.content_type != "application/problem+json":
        problems.append(
            f"{exchange.method} {exchange.path}: not in the spec, answered {exchange.status} "
            f"{exchange.content_type}"
        )
    if exchange.status == 405 and "allow" not in exchange.response_headers:
        problems.append(f"{exchange.method} {exchange.path}: 405 without Allow")
    return problems + check_headers(exchange)


class Session:
    """An aiohttp test client that records every exchange and checks it against the spec."""

    def __init__(self, client, spec: Spec) -> None:
        self.client = client
        self.spec = spec
        self.seen: list[Exchange] = []

    async def call(
        self,
        method: str,
        target: str,
        headers: dict | None = None,
        *,
        json_body=None,
        data=None,
        raw: bytes | None = None,
    ) -> Exchange:
        headers = dict(headers or {})
        body = raw
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        resp = await self.client.request(
            method, target, headers=headers, data=data if data is not None else body
        )
        exchange = Exchange(
            method,
            target,
            headers,
            body,
            resp.status,
            {k.lower(): v for k, v in resp.headers.items()},
            await resp.read(),
        )
        self.seen.append(exchange)
        return exchange

    async def expect(
        self, status: int, method: str, target: str, headers: dict | None = None, **kw
    ) -> Exchange:
        """A call that must answer ``status``."""
        exchange = await self.call(method, target, headers, **kw)
        assert exchange.status == status, exchange.describe()
        return exchange

    def json(self, exchange: Exchange):
        return json.loads(exchange.response_body)

    async def user(self, private: bool = False) -> tuple[str, dict]:
        name = f"u{uuid.uuid4().hex[:12]}"
        await self.expect(
            201, "POST", "/v1/users", json_body={"username": name, "password": PASSWORD}
        )
        token = self.json(
            await self.expect(
                201, "POST", "/v1/sessions", json_body={"username": name, "password": PASSWORD}
            )
        )["token"]
        headers = {"Authorization": f"Bearer {token}"}
        if private:
            await self.expect(200, "PATCH", "/v1/me", headers, json_body={"private": True})
        return name, headers

    async def upload(
        self, status: int, headers: dict, data: bytes, title: str = "a cat", **fields
    ) -> Exchange:
        form = aiohttp.FormData()
        form.add_field("title", title)
        for key, value in fields.items():
            form.add_field(key, value)
        form.add_field(
            "file", io.BytesIO(data), filename="f.bin", content_type="application/octet-stream"
        )
        return await self.expect(status, "POST", "/v1/photos", headers, data=form)

    def report(self) -> list[str]:
        """Every exchange's violations."""
        return [f"{v}\n    {e.describe()}" for e in self.seen for v in violations(self.spec, e)]

    async def send_raw(
        self, method: str, target: str, headers: dict, body: bytes | None
    ) -> Exchange:
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
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )
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


def send_blocking(
    address: tuple[str, int], method: str, target: str, headers: dict, body: bytes | None
) -> Exchange:
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

"""What an operation takes and answers, declared once beside its handler.

A handler carries an ``Operation`` (``@declare``): its summary, description and tag, its
parameters, its request body's schema, its answers and the problem statuses it can give.
``server/openapi.py`` assembles /openapi.json from them; the handlers parse their input
with the same ``Param`` objects, so a bound or pattern the spec states is the one the
handler checks: an id, a limit, a cursor, the search words, the Idempotency-Key. Text
fields carry the pattern ``text_pattern`` draws from ``instastore.text.refused``, the
rule the core checks them by. A bound that is a setting is a ``Setting``: the spec
served states the value in force. Nothing here touches a store.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from instastore import ids, paging, text
from instastore.accounts import USERNAME
from instastore.errors import BadCursor, InvalidInput
from instastore.limits import MAX_IDEMPOTENCY_KEY, MAX_LIMIT_DIGITS, MAX_QUERY_CHARS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Setting:
    """A bound that is the setting ``name`` of ``instastore.config.Settings``."""

    name: str


@dataclass(frozen=True)
class TextPattern:
    """The pattern of a checked text field (``text_pattern``), made when the spec is
    built: it takes a scan of all of Unicode, which no import should pay for."""

    required: bool


def ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema(name: str) -> dict[str, str]:
    return ref("schemas", name)


def decimal_at_most(most: int) -> str:
    """A pattern of the decimals 1 to ``most``, without leading zeros."""
    digits = str(most)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else None
    same = []
    for i, d in enumerate(digits):
        low = "1" if i == 0 else "0"
        if d > low:
            rest = len(digits) - i - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            same.append(f"{digits[:i]}[{low}-{chr(ord(d) - 1)}]{tail}")
    same.append(digits)
    return "^(" + "|".join(([shorter] if shorter else []) + same) + ")$"


def _ranges(codes: list[int]) -> str:
    """A character class body for these code points: BMP ones escaped, in ranges; astral
    ones literal and one by one (a regex without Unicode mode, as linters compile
    patterns, reads an astral character as two UTF-16 units, and a range of them as out
    of order)."""

    def one(code: int) -> str:
        return f"\\u{code:04x}" if code < 0x10000 else chr(code)

    spans: list[list[int]] = []
    for code in codes:
        if spans and spans[-1][1] == code - 1 and code < 0x10000:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in spans)


@functools.cache
def _text_classes() -> tuple[str, str, str]:
    """The character classes of refused characters, of whitespace, and of either."""
    refusing, spaces = [], []
    for code in range(sys.maxunicode + 1):
        if not 0xD800 <= code < 0xE000:
            refusing.append(text.refused(chr(code)))
            spaces.append(chr(code).isspace())
    codes = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000]
    refused = _ranges([c for c, no in zip(codes, refusing, strict=True) if no])
    space = _ranges([c for c, sp in zip(codes, spaces, strict=True) if sp])
    either = _ranges([c for c, no, sp in zip(codes, refusing, spaces, strict=True) if no or sp])
    return refused, space, either


@functools.cache
def text_pattern(required: bool) -> str:
    """The pattern of a text field the core checks with ``instastore.text.check_text``
    after trimming whitespace: refused characters only at its ends when they are
    whitespace, a tag character only in an emoji flag; ``required``: not blank.
    (Lone surrogates are not JSON Schema strings; they are refused all the same.)"""
    refused, space, either = _text_classes()
    tags = _ranges(list(range(0xE0020, 0xE0080)))
    flag = f"{text.BLACK_FLAG}[{tags}]+"
    allowed, solid = f"(?:[^{refused}]|{flag})", f"(?:[^{either}]|{flag})"
    core = f"{solid}(?:{allowed}*{solid})?"
    return f"^[{space}]*{core if required else f'(?:{core})?'}[{space}]*$"


ID = {
    "type": "string",
    "pattern": decimal_at_most(ids.MAX_ID),
    "description": "a 64-bit id as a decimal string (1 to 2^63-1, no leading zeros)",
}
TIME = {"type": "string", "format": "date-time"}
COUNT = {"type": "integer", "minimum": 0}
USERNAME_SCHEMA = {"type": "string", "pattern": f"^{USERNAME.pattern}$"}
# A sealed cursor in base64url without padding: its nonce, kind letter and tag at least.
_CURSOR_MIN = -(-(paging.NONCE_BYTES + 1 + paging.TAG_BYTES) * 4 // 3)
CURSOR_PATTERN = f"^([A-Za-z0-9_-]{{{_CURSOR_MIN},{paging.MAX_CURSOR_CHARS}}})?$"
# Search words: at least one ASCII letter or digit, or any character past ASCII.
QUERY_PATTERN = "[0-9A-Za-z\\u0080-\U0010ffff]"
# SECURITY: printable ASCII only: a key is stored and compared, never shown.
IDEMPOTENCY_KEY_PATTERN = f"^[\\u0020-\\u007e]{{1,{MAX_IDEMPOTENCY_KEY}}}$"


@dataclass(frozen=True)
class Param:
    """One path, query or header parameter: its schema in the spec and its parsing."""

    name: str
    where: str  # path, query or header
    value: dict[str, Any]
    description: str
    required: bool = False

    def described(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": self.where == "path" or self.required,
            "description": self.description,
            "schema": self.value,
        }

    def raw(self, request: web.Request) -> str | None:
        if self.where == "path":
            return request.match_info[self.name]
        if self.where == "query":
            return request.query.get(self.name)
        return request.headers.get(self.name)

    def matches(self, value: str) -> bool:
        return re.fullmatch(self.value["pattern"], value) is not None


def path_id(name: str, what: str) -> Param:
    return Param(name, "path", ID, f"the {what}'s id")


PHOTO_ID = path_id("photo_id", "photo")
SESSION_ID = path_id("session_id", "session")
USERNAME_PARAM = Param("username", "path", USERNAME_SCHEMA, "the user's username")
LIMIT = Param(
    "limit",
    "query",
    {"type": "integer", "minimum": 1, "maximum": 10**MAX_LIMIT_DIGITS - 1},
    "items per page; more than the page size (the max_page_size setting) is clamped",
)
CURSOR = Param(
    "cursor",
    "query",
    {"type": "string", "pattern": CURSOR_PATTERN},
    "next_cursor of the previous page of this list; any other cursor is a 400",
)
PAGE_PARAMS = (LIMIT, CURSOR)
QUERY = Param(
    "q",
    "query",
    {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": QUERY_PATTERN},
    "the words to find: at least one ASCII letter or digit, or a character past ASCII",
    required=True,
)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
    "printable ASCII; a retry with the same key returns the first upload's photo",
)


def parse_id(request: web.Request, param: Param, what: str) -> int:
    raw = param.raw(request) or ""
    if not param.matches(raw):
        raise InvalidInput(f"{what} must be a decimal id from 1 to {ids.MAX_ID}, not {raw!r:.60}")
    return ids.parse_id(raw, what)


def parse_limit(request: web.Request, most: int, default: int = 20) -> int:
    raw = LIMIT.raw(request)
    if raw is None:
        return default
    # str.isdigit() takes "²" and "①" (int() refuses them) and int() refuses past 4,300
    # digits: ASCII digits, few enough that any page size fits.
    if not re.fullmatch(f"[0-9]{{1,{MAX_LIMIT_DIGITS}}}", raw) or int(raw) < 1:
        raise InvalidInput(f"limit must be an integer from 1 to {LIMIT.value['maximum']}")
    return paging.clamp_limit(int(raw), most)


def parse_cursor(request: web.Request) -> str | None:
    raw = CURSOR.raw(request)
    if raw and not CURSOR.matches(raw):
        raise BadCursor(f"cursor {raw[:40]!r} is not one this service made")
    return raw or None


def parse_header(request: web.Request, param: Param, rule: str) -> str | None:
    raw = param.raw(request)
    if raw is not None and not param.matches(raw):
        raise InvalidInput(f"{param.name} must be {rule}")
    return raw


def query_has_a_word(query: str) -> bool:
    return re.search(QUERY_PATTERN, query) is not None


@dataclass(frozen=True)
class Field:
    """A JSON body field: its schema, and the Python types the handler takes for it."""

    value: dict[str, Any]
    types: tuple[type, ...]
    rule: str


def required_text(limit: str) -> dict[str, Any]:
    """The schema of a text the service checks with ``instastore.text`` (a title, a
    comment): a string of 1 to the ``limit`` setting's characters, trimmed, not blank."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": Setting(limit),
        "pattern": TextPattern(required=True),
        "description": "trimmed, not blank; no control or invisible formatting characters",
    }


def json_fields(body: dict[str, Any], fields: dict[str, Field], verb: str) -> None:
    """``InvalidInput`` for a field the body may not have, or one of the wrong type
    (``null`` included: a field given must be of its type)."""
    unknown = set(body) - set(fields)
    if unknown:
        raise InvalidInput(
            f"unknown fields: {', '.join(sorted(unknown))}; {verb} takes {' and '.join(fields)}"
        )
    for name, declared in fields.items():
        value = body.get(name)
        if name in body and not (
            isinstance(value, declared.types)
            and not (isinstance(value, bool) and bool not in declared.types)
        ):
            raise InvalidInput(f"{name} must be {declared.rule}")


def obj(
    properties: dict[str, Any], required: tuple[str, ...] | None = None, *, closed: bool = True
) -> dict[str, Any]:
    """An object schema; ``required`` defaults to every property. A closed object
    (the default for what the service sends) has no properties but these."""
    body: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }
    if closed:
        body["additionalProperties"] = False
    return body


def json_body(fields: dict[str, Field], required: tuple[str, ...]) -> dict[str, Any]:
    return {JSON: {"schema": obj({k: f.value for k, f in fields.items()}, required)}}


def ok(description: str, body: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if body:
        response["content"] = {JSON: {"schema": schema(body)}}
    return response


@dataclass(frozen=True)
class Operation:
    """One operation of the API: ``server/openapi.py`` adds the statuses every
    operation can answer (400, 401, 500, 503; 408 and 413 with a body)."""

    operation_id: str
    tag: str
    summary: str
    description: str
    success: dict[str, dict[str, Any]]
    errors: tuple[str, ...] = ()
    auth: bool = True
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    special: dict[str, dict[str, Any]] = field(default_factory=dict)


DECLARED: dict[tuple[Handler, str], Operation] = {}


def declare(operation: Operation, *, method: str = "*") -> Callable[[Handler], Handler]:
    """Declare ``handler``'s operation (``method``: only for that method of a handler
    that serves several)."""

    def register(handler: Handler) -> Handler:
        DECLARED[(handler, method)] = operation
        return handler

    return register


def declared(handler: Handler, method: str, *, only: bool = False) -> Operation | None:
    """The operation ``handler`` declares for ``method`` (``only``: for that method alone,
    not for every method it serves)."""
    return DECLARED.get((handler, method)) or (None if only else DECLARED.get((handler, "*")))

"""A few proto2 fields, encoded and decoded by hand: what the read of a block sends and
what the DataNode answers (``reader``) need of the protobuf wire format, no more, and no
protobuf runtime. Decoding refuses (``ValueError``) what is truncated or overlong."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

_UINT64 = 0xFFFFFFFFFFFFFFFF


def varint(n: int) -> bytes:
    n &= _UINT64  # negative ids (striped groups) go as two's complement uint64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def bytes_field(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


async def read_delimited(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    """One varint-length-delimited message from ``reader``, refused (ValueError) from its
    length past ``max_bytes``."""
    value = shift = 0
    while True:
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
        if shift > 28:
            raise ValueError("overlong length prefix")
    if value > max_bytes:
        raise ValueError(f"a message of {value} bytes")
    return await reader.readexactly(value)


def decode(buf: bytes) -> dict[int, list[Any]]:
    """A proto2 message's fields by number: varints as ints (signed when they were
    negative int64s), fixed64 and fixed32 as little-endian signed ints, bytes as bytes."""
    fields: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = read_varint(buf, pos)
            if value >= 1 << 63:
                value -= 1 << 64
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise ValueError("truncated fixed-size field")
            (value,) = struct.unpack_from("<q" if wire == 1 else "<i", buf, pos)
            pos += size
        elif wire == 2:
            size, pos = read_varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = bytes(buf[pos : pos + size]), pos + size
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def first(fields: dict[int, list[Any]], number: int, default: Any, kind: type) -> Any:
    """The first value of field ``number`` (``default`` when absent); ValueError when it
    is not of the wire type the message says it is."""
    value = fields.get(number, [default])[0]
    if not isinstance(value, kind):
        raise ValueError(f"field {number} is {type(value).__name__}, not {kind.__name__}")
    return value

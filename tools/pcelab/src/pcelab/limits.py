"""What the lab takes at most, so that no request can make it fail or knock it over.

- `MAX_BODY_BYTES`: a request body larger than this is 413 `request_too_large`, by its Content-Length before
  anything is read, else while it streams in (`body_limit`, applied by the app's Gate to every request).
- `loads(raw)`: JSON as the PCE reads it: nested at most `MAX_JSON_DEPTH` levels, no NaN/Infinity, no number
  too large for a float; ValueError (with what is wrong) otherwise. Every JSON body goes through it.
- `IdConvertor`: the `{name:id}` path parameter, a whole number of at most 18 digits, so an id always fits
  SQLite's 64-bit integers; a longer one matches no route (404).
- `parse_id(text)`: the same rule for ids in query strings.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.convertors import Convertor

from pcelab.errors import LabError

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_ID_DIGITS = 18

# --- body size -----------------------------------------------------------------------------------------------


def too_large() -> LabError:
    return LabError("request_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)


def declared_too_large(scope) -> bool:
    """Whether the request's Content-Length already says its body is over the limit."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip().isdigit() and int(value) > MAX_BODY_BYTES
    return False


def body_limit(scope, receive):
    """`receive`, counting the body's bytes as they arrive: past MAX_BODY_BYTES it raises the 413 LabError
    (whatever Content-Length said), which reaches the handler reading the body like any other refusal."""
    received = 0

    async def limited_receive():
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise too_large()
        return message

    return limited_receive


# --- JSON ----------------------------------------------------------------------------------------------------
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")


def nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether JSON text opens more than `limit` arrays/objects inside each other, without parsing it (json.loads
    recurses). Only C-speed bytes operations, bounded by `limit` passes, also for a body at MAX_BODY_BYTES."""
    opened = raw.count(b"[") + raw.count(b"{")
    if opened <= limit:
        return False
    # Escapes first (\\ then \"), then every other piece between quotes is a string: dropped.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(_AS_SQUARE, _NOT_BRACKETS)
    if brackets.count(b"[") != brackets.count(b"]"):
        return False  # not JSON: the parser says so (and its RecursionError is caught too)
    # Each pass removes the innermost pairs, one level; what is left after `limit` passes is deeper. A run of
    # limit+1 opening brackets settles it at once (what a deep body soon comes down to).
    too_deep = b"[" * (limit + 1)
    for _ in range(limit):
        if too_deep in brackets:
            return True
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return False
    return bool(brackets)


class JsonRefused(ValueError):
    """JSON text `loads` refuses although json.loads would take it; the message says why."""


def _no_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text[:40]} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def loads(raw: bytes) -> Any:
    """Parse a request body. ValueError when it is not JSON (UnicodeDecodeError, json.JSONDecodeError), JsonRefused
    when it is JSON the lab does not take (nested too deep, NaN/Infinity, a number out of range)."""
    if nests_deeper_than(raw, MAX_JSON_DEPTH):
        raise JsonRefused(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except RecursionError:  # cannot happen after the depth check; never a 500 all the same
        raise JsonRefused(f"the request body nests deeper than {MAX_JSON_DEPTH} levels") from None


# --- ids -----------------------------------------------------------------------------------------------------
class IdConvertor(Convertor[int]):
    """`{name:id}`: like Starlette's `int`, but at most MAX_ID_DIGITS digits (SQLite integers are 64-bit)."""

    regex = f"[0-9]{{1,{MAX_ID_DIGITS}}}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


def parse_id(text: str) -> int | None:
    """An id given as text (a query parameter): None unless it is 1 to MAX_ID_DIGITS ASCII digits."""
    if 0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None

"""Client frames as docs/PROTOCOL.md reads them, for the subset this peer speaks.

:func:`parse` turns one WebSocket message into a :class:`Hello`, :class:`Say` or
:class:`Ping`, or into the :class:`Refusal` that answers it, with the limits and error
codes Switchboard's own codec uses (``bad_frame``, ``unknown_type``, ``too_large``; a
frame over 64 KiB is refused by uvicorn with 1009). Every other type is unknown here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 16_000
MAX_TOKEN_CHARS = 8_192
MAX_CLIENT_CHARS = 64
MAX_SEQ = 2**63 - 1

ERROR_TEXTS = {
    "bad_frame": "malformed frame",
    "unknown_type": "unknown frame type",
    "too_large": "too large",
    "unauthorized": "unauthorized",
    "resync": "resume_after is past the end of the stream: drop your copy",
}


@dataclass(frozen=True, slots=True)
class Hello:
    token: str | None
    resume_after: int | None


@dataclass(frozen=True, slots=True)
class Say:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Ping:
    id: str


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    id: str | None = None


class _Reject(Exception):
    def __init__(self, code: str = "bad_frame") -> None:
        self.code = code


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Reject
    return obj


def _no_constants(name: str) -> Any:
    raise _Reject  # NaN and Infinity are not JSON


def _string(obj: dict[str, Any], key: str, max_chars: int, too_long: str = "bad_frame") -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Reject
    if len(value) > max_chars:
        raise _Reject(too_long)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Reject from None
    return value


def _optional(obj: dict[str, Any], key: str, max_chars: int) -> str | None:
    return None if obj.get(key) is None else _string(obj, key, max_chars)


def parse(data: str | None) -> Hello | Say | Ping | Refusal:
    """One text frame (``None`` for a binary one) as a client frame, or its refusal."""
    if data is None:
        return Refusal("bad_frame")
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (_Reject, ValueError, RecursionError):
        return Refusal("bad_frame")
    if not isinstance(obj, dict):
        return Refusal("bad_frame")
    try:
        frame_id: str | None = _string(obj, "id", MAX_ID_CHARS)
    except _Reject:
        frame_id = None
    kind = obj.get("type")
    try:
        if kind == "hello":
            after = obj.get("resume_after")
            if after is not None and (type(after) is not int or not 0 <= after <= MAX_SEQ):
                raise _Reject
            client = _optional(obj, "client", MAX_CLIENT_CHARS)
            if client is not None and not client.isprintable():
                raise _Reject
            return Hello(_optional(obj, "token", MAX_TOKEN_CHARS), after)
        if kind == "say":
            return Say(
                _string(obj, "id", MAX_ID_CHARS), _string(obj, "text", MAX_TEXT_CHARS, "too_large")
            )
        if kind == "ping":
            return Ping(_string(obj, "id", MAX_ID_CHARS))
    except _Reject as exc:
        return Refusal(exc.code, frame_id)
    return Refusal("bad_frame" if not isinstance(kind, str) else "unknown_type", frame_id)

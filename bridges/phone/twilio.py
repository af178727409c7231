"""Twilio Media Streams messages, sans-I/O: JSON text in, typed events out, and back.

A bidirectional stream (TwiML ``<Connect><Stream>``) carries, from Twilio::

    connected  {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start      {"event": "start", "sequenceNumber": "1", "streamSid": "MZ…",
                "start": {"accountSid", "streamSid", "callSid", "tracks": ["inbound"],
                          "customParameters": {…},
                          "mediaFormat": {"encoding": "audio/x-mulaw",
                                          "sampleRate": 8000, "channels": 1}}}
    media      {"event": "media", "sequenceNumber", "streamSid",
                "media": {"track": "inbound", "chunk": "2", "timestamp": "40",
                          "payload": "<base64 μ-law>"}}
    dtmf       {"event": "dtmf", "sequenceNumber", "streamSid",
                "dtmf": {"track": "inbound_track", "digit": "1"}}
    mark       {"event": "mark", "sequenceNumber", "streamSid", "mark": {"name": "…"}}
    stop       {"event": "stop", "sequenceNumber", "streamSid",
                "stop": {"accountSid", "callSid"}}

and, to Twilio, ``media`` (``{"event": "media", "streamSid", "media": {"payload"}}``),
``mark`` (answered by Twilio's own ``mark`` once the audio before it has played, or
dropped by ``clear``) and ``clear`` (drop the audio not yet played: barge-in).

Nothing here waits or does I/O; a malformed message is a :class:`MediaStreamError`
whose text names the problem, never the message's content (a payload is a patient's
voice, a parameter may name them).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

MULAW = "audio/x-mulaw"
SAMPLE_RATE = 8000


class MediaStreamError(ValueError):
    """A message that is not a Twilio Media Streams message this bridge accepts."""


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Media:
    stream_sid: str
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes  # μ-law, 8 kHz mono


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_sid: str
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    stream_sid: str
    call_sid: str


Event = Connected | Start | Media | Dtmf | Mark | Stop
DTMF_DIGITS = frozenset("0123456789*#")


def parse(text: str | bytes) -> Event:
    """The event one WebSocket text message carries.

    Raises :class:`MediaStreamError` for anything else, including a ``start`` whose
    audio is not 8 kHz mono μ-law.
    """
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MediaStreamError("not JSON") from exc
    if not isinstance(message, dict):
        raise MediaStreamError("not a JSON object")
    event = message.get("event")
    if event == "connected":
        return Connected(_str(message, "protocol"), _str(message, "version"))
    stream_sid = _str(message, "streamSid")
    if event == "start":
        start = _object(message, "start")
        audio = _object(start, "mediaFormat")
        if (audio.get("encoding"), audio.get("sampleRate"), audio.get("channels")) != (
            MULAW,
            SAMPLE_RATE,
            1,
        ):
            raise MediaStreamError("start: the audio is not 8 kHz mono audio/x-mulaw")
        parameters = start.get("customParameters", {})
        if not isinstance(parameters, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()
        ):
            raise MediaStreamError("start: customParameters is not an object of strings")
        tracks = start.get("tracks", ["inbound"])
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise MediaStreamError("start: tracks is not a list of strings")
        return Start(
            stream_sid=stream_sid,
            call_sid=_str(start, "callSid"),
            account_sid=_str(start, "accountSid"),
            tracks=tuple(tracks),
            custom_parameters=dict(parameters),
        )
    if event == "media":
        media = _object(message, "media")
        try:
            payload = base64.b64decode(_str(media, "payload"), validate=True)
        except binascii.Error as exc:
            raise MediaStreamError("media: the payload is not base64") from exc
        return Media(
            stream_sid=stream_sid,
            track=str(media.get("track", "inbound")),
            chunk=_int(media, "chunk"),
            timestamp_ms=_int(media, "timestamp"),
            payload=payload,
        )
    if event == "dtmf":
        digit = _str(_object(message, "dtmf"), "digit")
        if digit not in DTMF_DIGITS:
            raise MediaStreamError("dtmf: the digit is not 0-9, * or #")
        return Dtmf(stream_sid, digit)
    if event == "mark":
        return Mark(stream_sid, _str(_object(message, "mark"), "name"))
    if event == "stop":
        return Stop(stream_sid, _str(_object(message, "stop"), "callSid"))
    raise MediaStreamError("unknown event")


def media(stream_sid: str, mulaw: bytes) -> str:
    """A ``media`` message: *mulaw* (8 kHz mono) to be played on the call."""
    payload = base64.b64encode(mulaw).decode("ascii")
    return _dump({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark(stream_sid: str, name: str) -> str:
    """A ``mark`` message: Twilio answers with a ``mark`` of *name* once played."""
    return _dump({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    """A ``clear`` message: drop every ``media`` not yet played (barge-in)."""
    return _dump({"event": "clear", "streamSid": stream_sid})


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _object(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise MediaStreamError(f"{key} is missing or not an object")
    return value


def _str(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise MediaStreamError(f"{key} is missing or not a string")
    return value


def _int(message: dict[str, Any], key: str) -> int:
    # Twilio sends chunk and timestamp as decimal strings.
    value = message.get(key)
    if isinstance(value, str) and value.isdecimal():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise MediaStreamError(f"{key} is missing or not a non-negative integer")

"""Call scripts: the caller's side of a call as text, one step a line (docs/VOICE.md).

Pure parsing, no I/O: :func:`parse_script` turns a script into :data:`Step` values that
:meth:`VoiceBridge.play <bridges.voice.bridge.VoiceBridge.play>` performs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridges.wire import SpeechState

from .exceptions import ScriptError


@dataclass(frozen=True, slots=True)
class Say:
    """The caller's final transcript: sent as ``say``."""

    text: str


@dataclass(frozen=True, slots=True)
class Speech:
    """The caller's voice activity: sent as ``speech``."""

    state: SpeechState


@dataclass(frozen=True, slots=True)
class Wait:
    """Silence for ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class WaitFor:
    """Wait until the agent says something containing ``text`` (any case)."""

    text: str
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call."""


Step = Say | Speech | Wait | WaitFor | Hangup

_BARE: Mapping[str, Step] = {
    "speak-start": Speech(SpeechState.STARTED),
    "speak-stop": Speech(SpeechState.STOPPED),
    "hangup": Hangup(),
}


def parse_step(line: str, *, line_number: int = 1) -> Step | None:
    """One script line as a step; ``None`` for a blank line or a ``#`` comment.

    A line is ``say: <text>``, ``speak-start``, ``speak-stop``, ``wait: <seconds>``,
    ``wait-for: <text>`` or ``hangup``; a line starting with ``{`` is a JSON object
    (see :func:`_json_step`). Raises :class:`ScriptError` for anything else.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise ScriptError(line_number, "not valid JSON") from None
        if not isinstance(obj, dict):
            raise ScriptError(line_number, "a JSON step must be an object")
        return _json_step(obj, line_number)
    name, colon, argument = text.partition(":")
    name = name.strip().lower()
    if not colon:
        if name in _BARE:
            return _BARE[name]
        raise ScriptError(line_number, f"unknown step {name!r}")
    return _step(name, argument.strip(), line_number)


def parse_script(text: str) -> list[Step]:
    """Every step of a call script, in order; raises :class:`ScriptError`."""
    steps = [parse_step(line, line_number=n) for n, line in enumerate(text.splitlines(), 1)]
    return [step for step in steps if step is not None]


def _step(name: str, argument: str, line: int) -> Step:
    if name in _BARE:
        raise ScriptError(line, f"{name!r} takes no argument")
    if name == "say":
        if not argument:
            raise ScriptError(line, "say: needs the caller's words")
        return Say(argument)
    if name == "wait":
        return Wait(_seconds(argument, line))
    if name == "wait-for":
        if not argument:
            raise ScriptError(line, "wait-for: needs the text to wait for")
        return WaitFor(argument)
    raise ScriptError(line, f"unknown step {name!r}")


def _json_step(obj: Mapping[str, Any], line: int) -> Step:
    """``{"say": str}``, ``{"speech": "started"|"stopped"}``, ``{"wait": seconds}``,
    ``{"wait-for": str, "timeout": seconds}`` or ``{"hangup": true}``."""
    keys = set(obj) - {"timeout"}
    if len(keys) != 1 or ("timeout" in obj and keys != {"wait-for"}):
        raise ScriptError(
            line, "a JSON step has exactly one of say, speech, wait, wait-for, hangup"
        )
    (name,) = keys
    value = obj[name]
    if name == "speech":
        try:
            return Speech(SpeechState(value))
        except ValueError:
            raise ScriptError(line, 'speech is "started" or "stopped"') from None
    if name == "hangup":
        if value is not True:
            raise ScriptError(line, "hangup must be true")
        return Hangup()
    if name == "wait":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScriptError(line, "wait must be a number of seconds")
        return Wait(_seconds(str(value), line))
    if name in ("say", "wait-for"):
        if not isinstance(value, str) or not value.strip():
            raise ScriptError(line, f"{name} must be non-empty text")
        if name == "say":
            return Say(value.strip())
        timeout = obj.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
        ):
            raise ScriptError(line, "timeout must be a number of seconds")
        return WaitFor(value.strip(), None if timeout is None else _seconds(str(timeout), line))
    raise ScriptError(line, f"unknown step {name!r}")


def _seconds(value: str, line: int) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ScriptError(line, "expected a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ScriptError(line, "seconds must be a finite number >= 0")
    return seconds


def looks_like_step(line: str) -> bool:
    """Whether a typed line is meant as a script step rather than as the caller's words."""
    head = line.strip().split(":", 1)[0].strip().lower()
    return head in {"say", "wait", "wait-for", *_BARE} or line.lstrip().startswith("{")

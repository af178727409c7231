"""The call's protocol state, without I/O: server frames in, events out; frames to send.

:class:`CallState` keeps the resume point and whether the caller is speaking, and is
unit-tested without sockets. The :data:`Entry` types are the call's record, as
:class:`~bridges.voice.bridge.VoiceBridge` logs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridges.wire import SpeechState


@dataclass(frozen=True, slots=True)
class Welcomed:
    """The server's ``welcome``: the connection is open from ``last_seq`` on."""

    conversation_id: str | None
    last_seq: int


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """An agent's message from the stream; ``speak`` as the server marked it.

    ``spoken_ahead`` is how much of ``text`` was already handed to playback sentence by
    sentence while it streamed (:class:`Sentences`): only the rest is still to say.
    """

    seq: int
    kind: str
    text: str
    speak: bool
    task_id: str | None = None
    spoken_ahead: int = 0

    @property
    def unsaid(self) -> str:
        return self.text[self.spoken_ahead :].strip()


@dataclass(frozen=True, slots=True)
class Sentences:
    """Whole sentences of a reply still being streamed (``message.delta``), to be said
    before the reply is stored: the caller hears the first while the rest is written."""

    message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class TaskChanged:
    """A ``task`` event: a background task's new state."""

    seq: int
    task: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Answered:
    """An ``ack``; ``seq`` is that of what was stored."""

    id: str
    seq: int | None


@dataclass(frozen=True, slots=True)
class Failed:
    """An ``error`` frame; ``id`` is that of the refused frame, if it had one."""

    id: str | None
    code: str


Event = Welcomed | AgentMessage | Sentences | TaskChanged | Answered | Failed


class CallState:
    """The bridge's side of one conversation's wire protocol: frames in, events out.

    ``last_seq`` is the resume point: every stream event up to it has been received.
    It is not simply the highest ``seq`` seen, because a voice connection receives
    held ``progress``/``followup`` messages after events stored later (PROTOCOL.md,
    Voice); resuming from the highest would skip a held message. Events above it that
    already arrived are remembered, so that a replay never repeats one.
    """

    def __init__(self, resume_after: int = 0) -> None:
        self.last_seq = resume_after
        self.conversation_id: str | None = None
        self.speaking = False
        self._ahead: set[int] = set()
        self._next_id = 0
        # Per streamed message: its text so far, and how much of it was handed on.
        self._drafts: dict[str, tuple[str, int]] = {}

    def hello(self, token: str) -> dict[str, Any]:
        """The first frame of every connection: resume where the call left off."""
        return {"type": "hello", "token": token, "client": "voice", "resume_after": self.last_seq}

    def say(self, text: str) -> dict[str, Any]:
        """A ``say`` frame for the caller's final transcript, with an ``id`` of its own."""
        self._next_id += 1
        return {"type": "say", "id": f"say-{self._next_id}", "text": text}

    def refresh(self, token: str) -> dict[str, Any]:
        """A ``refresh`` frame: the same caller's new service token, before the old expires."""
        self._next_id += 1
        return {"type": "refresh", "id": f"refresh-{self._next_id}", "token": token}

    def speech(self, state: SpeechState) -> dict[str, Any]:
        """A ``speech`` frame; remembered, so that a new connection can be told."""
        self.speaking = state is SpeechState.STARTED
        return {"type": "speech", "state": state.value}

    def receive(self, frame: Mapping[str, Any]) -> Event | None:
        """The event a server frame means; ``None`` for frames a bridge ignores
        (replayed duplicates, the caller's own messages, types added later)."""
        kind = frame.get("type")
        if kind == "welcome":
            self.conversation_id = _str(frame.get("conversation_id"))
            return Welcomed(self.conversation_id, _int(frame.get("last_seq")) or 0)
        if kind == "ack":
            return Answered(str(frame.get("id")), _int(frame.get("seq")))
        if kind == "error":
            return Failed(_str(frame.get("id")), str(frame.get("code")))
        if kind == "message.delta":
            return self._delta(frame)
        seq = _int(frame.get("seq"))
        if seq is None or not self._first_time(seq):
            return None
        if kind == "message" and frame.get("role") == "agent":
            text = str(frame.get("text", ""))
            draft = self._drafts.pop(str(frame.get("message_id")), None)
            # What was said ahead counts only if the stored text begins with it.
            ahead = draft[1] if draft is not None and text.startswith(draft[0][: draft[1]]) else 0
            return AgentMessage(
                seq,
                str(frame.get("kind")),
                text,
                frame.get("speak") is True,
                _str(frame.get("task_id")),
                ahead,
            )
        task = frame.get("task")
        if kind == "task" and isinstance(task, Mapping):
            return TaskChanged(seq, task)
        return None

    def _delta(self, frame: Mapping[str, Any]) -> Sentences | None:
        message_id, piece = _str(frame.get("message_id")), frame.get("text")
        if message_id is None or not isinstance(piece, str):
            return None
        if message_id not in self._drafts and len(self._drafts) >= MAX_DRAFTS:
            # A stream whose message never came (a dropped connection): forget the oldest.
            self._drafts.pop(next(iter(self._drafts)))
        text, handed = self._drafts.get(message_id, ("", 0))
        text += piece
        end = _last_sentence_end(text, handed)
        self._drafts[message_id] = (text, max(end, handed))
        if end <= handed:
            return None
        return Sentences(message_id, text[handed:end].strip())

    def _first_time(self, seq: int) -> bool:
        if seq <= self.last_seq or seq in self._ahead:
            return False
        self._ahead.add(seq)
        while self.last_seq + 1 in self._ahead:
            self.last_seq += 1
            self._ahead.remove(self.last_seq)
        return True


MAX_DRAFTS = 8
"""Streamed messages a call follows at once (one is usual: the reply being written)."""

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s+")


def _last_sentence_end(text: str, start: int) -> int:
    """Where the last whole sentence of *text* after *start* ends (*start* if none)."""
    end = start
    for found in _SENTENCE_END.finditer(text, start):
        end = found.end()
    return end


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


# -- the call's record ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """A frame sent to the server."""

    at: float
    frame: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Received:
    """A frame received from the server."""

    at: float
    frame: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PlaybackStopped:
    """Barge-in: the caller spoke over these messages, so they were cut."""

    at: float
    cut: tuple[AgentMessage | Sentences, ...]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection closed with close ``code`` (a reconnection may follow)."""

    at: float
    code: int


Entry = Sent | Received | PlaybackStopped | Disconnected

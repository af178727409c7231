"""Playback: agent messages spoken one at a time through a :class:`Speaker`, cut on
barge-in."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import anyio
import anyio.lowlevel

from .call import AgentMessage, Sentences

PLAYBACK_QUEUE_SIZE = 64


class Speaker(Protocol):
    """The text-to-speech edge: what the caller hears."""

    async def speak(self, text: str) -> None:
        """Say *text*; return once it has been heard. Cancelled on barge-in."""

    def stop(self) -> None:
        """Barge-in: drop whatever audio is still buffered (Twilio's ``clear``)."""


@dataclass
class PrintingSpeaker:
    """Speaks by printing ``AGENT: …``; *words_per_second* > 0 paces it like speech."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    words_per_second: float = 0.0

    async def speak(self, text: str) -> None:
        print(f"AGENT: {text}", file=self.out, flush=True)
        if self.words_per_second > 0:
            await anyio.sleep(len(text.split()) / self.words_per_second)
        else:
            await anyio.lowlevel.checkpoint()

    def stop(self) -> None:
        print("  (the caller spoke: playback stopped)", file=self.out, flush=True)


class Playback:
    """Agent messages waiting to be spoken, spoken one at a time, cut on barge-in.

    *on_heard* is called with each message once it has been spoken to the end.
    """

    def __init__(self, speaker: Speaker, on_heard: Callable[[AgentMessage], None]) -> None:
        self.speaker = speaker
        self._on_heard = on_heard
        # Bounded: when full, queue() waits, so the bridge stops reading its socket;
        # the server then closes it with 4001 and the bridge resumes from last_seq.
        self._send, self._receive = anyio.create_memory_object_stream[AgentMessage | Sentences](
            PLAYBACK_QUEUE_SIZE
        )
        self._current: AgentMessage | Sentences | None = None
        self._scope: anyio.CancelScope | None = None

    async def queue(self, message: AgentMessage | Sentences) -> None:
        """Speak *message* after those already queued; waits while the queue is full.

        :class:`Sentences` of a reply still streaming are said as they come; the reply
        itself, once stored, says only what they did not (``unsaid``).
        """
        await self._send.send(message)

    def close(self) -> None:
        """Close the queue without :meth:`run` (which otherwise closes it on exit)."""
        self._send.close()
        self._receive.close()

    async def run(self) -> None:
        """Speak queued messages until cancelled."""
        with self._send, self._receive:
            async for message in self._receive:
                with anyio.CancelScope() as scope:
                    self._current, self._scope = message, scope
                    try:
                        if isinstance(message, Sentences):
                            await self.speaker.speak(message.text)
                            continue
                        if message.unsaid:
                            await self.speaker.speak(message.unsaid)
                        self._on_heard(message)
                    finally:
                        self._current, self._scope = None, None

    def stop(self) -> tuple[AgentMessage | Sentences, ...]:
        """Cut what is playing and drop what is queued; returns what was cut."""
        cut: list[AgentMessage | Sentences] = [] if self._current is None else [self._current]
        if self._scope is not None:
            self._scope.cancel()
        while True:
            try:
                cut.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        if cut:
            self.speaker.stop()
        return tuple(cut)

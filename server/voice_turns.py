"""Voice turn-taking on one socket (PROTOCOL.md, Voice), without I/O.

While the caller speaks, or while a turn of theirs still waits for its reply, the
unsolicited ``progress`` and ``followup`` messages are held; they go out, in the order
they came, at the caller's next pause: not speaking, every turn answered, and the pause
grace after ``speech`` ``stopped`` over. Nothing else is ever held, and nothing held is
ever dropped.

:class:`VoiceTurns` is sans-I/O: the socket reports what happened (a turn said, speech
started or stopped, an event delivered) and asks what to do, passing the clock in as
``now``. It never awaits and never reads a clock, so it is unit-tested without sockets.

Invariants:

* ``_held`` is non-empty only on a voice socket, and holds only agent ``progress`` and
  ``followup`` messages, oldest first.
* Once one event is held, every later holdable event is held behind it, so the caller
  hears them in order.
"""

from __future__ import annotations

from agents.models import Message, MessageKind, MessageRole, StreamEvent

_UNSOLICITED = (MessageKind.PROGRESS, MessageKind.FOLLOWUP)
_ANSWERS = (MessageKind.REPLY, MessageKind.NOTICE)


class VoiceTurns:
    """When a voice socket may speak unsolicited updates, and the updates that wait."""

    def __init__(self, *, pause_grace: float, voice: bool = False) -> None:
        self.voice = voice
        """Whether the client is a voice bridge; only then is anything held."""
        self.pause_grace = pause_grace
        """Seconds after ``speech`` ``stopped`` before held updates may go out."""
        self.speaking = False
        self._pause_ends: float | None = None
        # Turns said on this socket whose reply has not gone out.
        self._turns_pending = 0
        self._held: list[StreamEvent] = []

    # -- what happened ---------------------------------------------------------------

    def said(self) -> None:
        """The caller said a turn: hold updates until its reply has gone out."""
        self._turns_pending += 1

    def say_failed(self) -> None:
        """The turn just said was refused: no reply will come for it."""
        self._turns_pending = max(0, self._turns_pending - 1)

    def speech_started(self, *, barged_in: bool) -> None:
        """The caller started speaking.

        *barged_in* says that the reply still being produced was abandoned (it will
        never come), so its turn no longer waits; background tasks go on.
        """
        self.speaking = True
        self._pause_ends = None
        if barged_in:
            self._turns_pending = max(0, self._turns_pending - 1)

    def speech_stopped(self, now: float) -> None:
        """The caller stopped speaking at *now*: their pause starts after the grace."""
        self.speaking = False
        self._pause_ends = now + self.pause_grace

    def delivered(self, event: StreamEvent) -> None:
        """*event* is going out; an agent's reply or notice answers the oldest turn."""
        body = event.body
        if isinstance(body, Message) and body.role is MessageRole.AGENT and body.kind in _ANSWERS:
            # The answer to a turn (or the notice that stands in for it).
            self._turns_pending = max(0, self._turns_pending - 1)

    # -- what to do ------------------------------------------------------------------

    def hold(self, event: StreamEvent, now: float) -> bool:
        """Keep *event* for the caller's next pause if it may not go out at *now*.

        Returns whether it was kept; if not, the caller delivers it now.
        """
        if not self._holdable(event):
            return False
        if self._held or not self.may_release(now):
            self._held.append(event)
            return True
        return False

    def may_release(self, now: float) -> bool:
        """The caller is in a pause: not speaking, every turn answered, the grace over."""
        if self.speaking or self._turns_pending:
            return False
        return self._pause_ends is None or now >= self._pause_ends

    def timeout(self, now: float) -> float | None:
        """How long the writer may wait for the next item before releasing held updates.

        ``None`` means until something arrives: a reply or a speech frame is what can
        end the hold, so there is nothing to poll for.
        """
        if not self._held:
            return None
        if self.may_release(now):
            return 0.0
        if not self.speaking and not self._turns_pending and self._pause_ends is not None:
            return max(0.0, self._pause_ends - now)
        return None

    def take_held(self, now: float) -> list[StreamEvent]:
        """The held updates, oldest first, if the caller is in a pause at *now*; else none.

        Taken ones are no longer held: the caller delivers every one of them.
        """
        if not self._held or not self.may_release(now):
            return []
        held, self._held = self._held, []
        return held

    def statistics(self) -> dict[str, int | bool]:
        """The turn-taking state, for tests and diagnostics."""
        return {
            "speaking": self.speaking,
            "turns_pending": self._turns_pending,
            "held": len(self._held),
        }

    def _holdable(self, event: StreamEvent) -> bool:
        body = event.body
        return (
            self.voice
            and isinstance(body, Message)
            and body.role is MessageRole.AGENT
            and body.kind in _UNSOLICITED
        )

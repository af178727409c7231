"""What a socket or an HTTP call asks of a conversation's runtime, as values.

The host (:class:`~agents.host.ConversationHost`) is the one door: it checks who may
ask, finds the conversation's home, and either runs the command there (this node) or
hands it to the home through the :class:`~agents.ports.Relay`, which carries these
values between nodes. Reads need no home: the store is never behind the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.models import StreamEvent, Task


@dataclass(frozen=True, slots=True)
class SayText:
    """The person's turn: stored, then answered by the primary agent."""

    text: str


@dataclass(frozen=True, slots=True)
class InstructTask:
    """New instructions for a running task (its owner's)."""

    task_id: str
    text: str
    channel: str


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Cancel a task and what it started (its owner's); idempotent."""

    task_id: str
    reason: str | None
    channel: str


@dataclass(frozen=True, slots=True)
class InterruptTurn:
    """Barge-in: abandon the reply being produced, if any."""


Command = SayText | InstructTask | CancelTask | InterruptTurn

Answer = StreamEvent | Task | bool
"""A command's answer: the stored event (say, instruct), the task (cancel), or whether
a reply was abandoned (interrupt)."""

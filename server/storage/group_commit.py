"""Group commit: concurrent commits coalesced into one transaction.

A node with many conversations commits many small changes at once (every progress
update is one). Each in its own transaction, they queue on the database's write lock
and each pays a transaction's fixed cost; one writer that takes whatever is waiting
and stores it in a single transaction pays that cost once per batch. A batch that
fails is retried commit by commit, so one bad commit never fails its neighbours.

A commit marked ``background`` (:class:`~agents.ports.Changes`: a progress flush) is
one nobody waits on: the commits waiting with it that are not go in the next batch
first, and background ones fill it up to :data:`BACKGROUND_BATCH_EVENTS` events (at
least one of them goes in each batch, so none waits for ever). A person's ``say``
then waits for the batch being written, not for the progress of a thousand tasks
queued before it (nor for its own conversation's, which :meth:`GroupCommitter.hurry`
moves up when the say queues behind it); and a batch, written in the event loop's
thread on SQLite, holds the loop for a few milliseconds rather than for as long as
everything queued takes.

A writer woken by a commit does not take its batch at once: it first lets every task
that can run go ahead of it, again for as long as each turn of the event loop brings
more commits (:data:`GATHER_ROUNDS`). Conversations whose turns are under way in the
same moment then share one transaction, where the first of them would otherwise be
written alone and the others wait for the next; a commit waits a turn of the loop or
two longer for it.

Invariants: commits of each kind are applied in the order they were requested (a
conversation sends one commit at a time, so its own are never reordered), each caller
gets exactly its own events back, and a caller is answered only once its changes are
durable (or have failed, with nothing stored).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from agents.exceptions import SwitchboardError, Unavailable
from agents.models import StreamEvent
from agents.ports import Changes

MAX_BATCH = 256
"""At most this many commits per transaction, so that one never grows without bound."""

BACKGROUND_BATCH_EVENTS = 64
"""Background commits join a batch while it holds fewer events than this (one always
does, if any waits). P1's p99, 3 runs each in one sitting: 22.4 ms at 32, 20.0 at 64,
22.6 at 128; written inline an event takes about 55 µs of the loop."""


GATHER_ROUNDS = 4
"""At most this many turns of the event loop that a woken writer lets go by, while each
brings more commits, before it takes its batch. P4 (32 conversations saying in closed
loops), 3 rounds in turn: 8 says a batch and 0.20-0.21 ms of CPU a say writing at once,
14 and 0.19-0.20 after one turn, 23 and 0.18-0.20 with up to four; P1's p50 went from
1.43 to 1.51-1.54 ms."""


@dataclass(eq=False, slots=True)
class _Waiting:
    changes: Changes
    done: anyio.Event = field(default_factory=anyio.Event)
    events: list[StreamEvent] | None = None
    error: SwitchboardError | None = None


class GroupCommitter:
    """Runs the one writer of a :class:`~server.storage.sql_store.SqlStore`.

    Start :meth:`run` in a task group; until it runs (and after it stops) commits go
    straight to the store, one transaction each.
    """

    def __init__(self, commit_batch: _BatchFunction, commit_one: _OneFunction) -> None:
        self._commit_batch = commit_batch
        self._commit_one = commit_one
        # Bounded by the callers themselves: each waits for its own answer before it
        # can ask again, so these hold at most one entry per waiting task.
        self._waiting: deque[_Waiting] = deque()
        self._background: deque[_Waiting] = deque()
        self._wakeup = anyio.Event()
        self._running = False
        self.batches = 0
        self.commits = 0

    async def commit(self, changes: Changes) -> list[StreamEvent]:
        if not self._running:
            return await self._commit_one(changes)
        waiting = _Waiting(changes)
        (self._background if changes.background else self._waiting).append(waiting)
        self._wakeup.set()
        # Shielded: once queued the commit will happen, and its caller must hear how it
        # went (a cancelled caller that missed it would leave a seq it never announced).
        with anyio.CancelScope(shield=True):
            await waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error
        assert waiting.events is not None
        return waiting.events

    def hurry(self, conversation_id: str) -> None:
        """The conversation's background commit, if one waits, now waits with the commits
        that are not (one of its own waits behind it: a conversation's commits are
        written one at a time, so the one behind would otherwise wait as long)."""
        for waiting in self._background:
            fence = waiting.changes.fence
            if fence is not None and fence.conversation_id == conversation_id:
                self._background.remove(waiting)
                self._waiting.append(waiting)
                return

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled; what is queued then is still written."""
        self._running = True
        task_status.started()
        try:
            while True:
                while not (self._waiting or self._background):
                    await self._wakeup.wait()
                    self._wakeup = anyio.Event()
                await self._gather()
                # Shielded: its callers wait, shielded, to hear how it went (cancelled
                # part-way, it would leave them waiting for ever). The store bounds its
                # own waits.
                with anyio.CancelScope(shield=True):
                    await self._write_batch()
        finally:
            self._running = False
            with anyio.CancelScope(shield=True):
                while self._waiting or self._background:
                    await self._write_batch()

    async def _gather(self) -> None:
        """Let the tasks that can run go first, for as long as each turn of the loop
        brings more commits (at most :data:`GATHER_ROUNDS` turns)."""
        for _ in range(GATHER_ROUNDS):
            queued = len(self._waiting) + len(self._background)
            await anyio.lowlevel.checkpoint()
            if len(self._waiting) + len(self._background) == queued:
                return

    def _next_batch(self) -> list[_Waiting]:
        """The commits nobody has to wait behind first, then background ones (see the
        module's docstring)."""
        urgent, background = self._waiting, self._background
        batch = [urgent.popleft() for _ in range(min(MAX_BATCH, len(urgent)))]
        events = sum(len(w.changes.events) for w in batch)
        some = False
        while (
            background
            and len(batch) < MAX_BATCH
            and not (some and events >= BACKGROUND_BATCH_EVENTS)
        ):
            waiting = background.popleft()
            batch.append(waiting)
            events += len(waiting.changes.events)
            some = True
        return batch

    async def _write_batch(self) -> None:
        batch = self._next_batch()
        try:
            results = await self._commit_batch([w.changes for w in batch])
        except Exception as exc:  # the thread itself failed: nothing was stored
            error = exc if isinstance(exc, SwitchboardError) else Unavailable("store unavailable")
            results = [error] * len(batch)
        for waiting, result in zip(batch, results, strict=True):
            if isinstance(result, SwitchboardError):
                waiting.error = result
            else:
                waiting.events = result
            waiting.done.set()
        self.batches += 1
        self.commits += len(batch)

    def statistics(self) -> dict[str, int]:
        return {
            "waiting": len(self._waiting) + len(self._background),
            "batches": self.batches,
            "commits": self.commits,
        }


class _BatchFunction(Protocol):
    async def __call__(
        self, batch: Sequence[Changes], /
    ) -> list[list[StreamEvent] | SwitchboardError]: ...


class _OneFunction(Protocol):
    async def __call__(self, changes: Changes, /) -> list[StreamEvent]: ...

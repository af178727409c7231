"""The runtime's audit port on top of :mod:`audit`: entries become hash-chained records.

The chain is one sequence, so appends are serialized; each is a transaction, and on a
busy node the transactions' fixed cost is most of an append's. While
:meth:`TrailAuditSink.run` runs, the entries recorded meanwhile are appended together
in one transaction (group commit): a fan-out's ``TASK_STARTED`` records, or the
``PHI_RECORD_VIEWED`` records of a thousand sockets opening at once, pay that cost
once per batch rather than once each. A caller still returns only once its own
entries are stored, so a read still waits for its record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

from agents.exceptions import Unavailable
from agents.models import Role
from agents.ports import AuditEntry
from agents.ports import AuditOutcome as EntryOutcome
from agents.ports import AuditReason as EntryReason
from agents.ports import AuditType as EntryType
from audit import (
    ActorKind,
    AuditError,
    AuditEvent,
    AuditOutcome,
    AuditReason,
    AuditTrail,
    AuditType,
)

_ACTOR_KINDS = {
    Role.PERSON: ActorKind.PERSON,
    Role.AGENT: ActorKind.AGENT,
    Role.SERVICE: ActorKind.SERVICE,
    Role.AUDITOR: ActorKind.AUDITOR,
}

MAX_BATCH_RECORDS = 512
"""At most this many records per transaction (more than one caller's if need be)."""


@dataclass(eq=False, slots=True)
class _Waiting:
    events: list[AuditEvent]
    done: anyio.Event = field(default_factory=anyio.Event)
    error: AuditError | None = None


class TrailAuditSink:
    """An :class:`agents.ports.AuditSink` writing to an :class:`audit.AuditTrail`.

    Appends run in a worker thread, one batch at a time: the chain is serialized anyway,
    and one writer keeps the order of a conversation's reads the order of its records.
    Start :meth:`run` in a task group; until it runs (and after it stops) each call is
    its own append.
    """

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self._limiter = anyio.CapacityLimiter(1)
        # Bounded by the callers: each waits for its own entries before it records more.
        self._waiting: deque[_Waiting] = deque()
        self._wakeup = anyio.Event()
        self._running = False
        self.written = 0
        self.failed = 0
        self.batches = 0

    async def record(self, entry: AuditEntry) -> None:
        await self.record_many((entry,))

    async def record_many(self, entries: Sequence[AuditEntry]) -> None:
        """Append *entries* in order, all or none. Raises :class:`Unavailable`."""
        try:
            events = [to_event(entry) for entry in entries]
        except AuditError as exc:
            self.failed += len(entries)
            raise Unavailable("audit trail unavailable") from exc
        if not events:
            return
        if not self._running:
            error = (await self._append([events]))[0]
        else:
            waiting = _Waiting(events)
            self._waiting.append(waiting)
            self._wakeup.set()
            # Shielded: once queued the entries are appended, and the read they guard
            # must not be let go (nor its caller told it failed) before that is known.
            with anyio.CancelScope(shield=True):
                await waiting.done.wait()
            error = waiting.error
        if error is not None:
            raise Unavailable("audit trail unavailable") from error

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Append batches until cancelled; what is queued then is still appended."""
        self._running = True
        task_status.started()
        try:
            while True:
                while not self._waiting:
                    await self._wakeup.wait()
                    self._wakeup = anyio.Event()
                # Shielded: its callers wait, shielded, to hear how it went. The trail
                # bounds its own waits (lock_timeout, the database's timeouts).
                with anyio.CancelScope(shield=True):
                    await self._write_batch()
        finally:
            self._running = False
            with anyio.CancelScope(shield=True):
                while self._waiting:
                    await self._write_batch()

    async def _write_batch(self) -> None:
        batch = [self._waiting.popleft()]
        records = len(batch[0].events)
        while self._waiting and records + len(self._waiting[0].events) <= MAX_BATCH_RECORDS:
            batch.append(self._waiting.popleft())
            records += len(batch[-1].events)
        errors = await self._append([w.events for w in batch])
        for waiting, error in zip(batch, errors, strict=True):
            waiting.error = error
            waiting.done.set()

    async def _append(self, groups: list[list[AuditEvent]]) -> list[AuditError | None]:
        try:
            errors = await anyio.to_thread.run_sync(
                _append_groups, self.trail, groups, limiter=self._limiter
            )
        except Exception as exc:  # the thread itself failed: nothing was appended
            errors = [AuditError(f"audit append failed: {type(exc).__name__}")] * len(groups)
        self.batches += 1
        for group, error in zip(groups, errors, strict=True):
            if error is None:
                self.written += len(group)
            else:
                self.failed += len(group)
        return errors

    def statistics(self) -> dict[str, int]:
        return {
            "waiting": len(self._waiting),
            "batches": self.batches,
            "written": self.written,
            "failed": self.failed,
        }


def _append_groups(trail: AuditTrail, groups: list[list[AuditEvent]]) -> list[AuditError | None]:
    """Append every group in one transaction; if the trail refuses that, each group
    alone, so that one bad group fails by itself. (In a worker thread.)"""
    try:
        trail.record_many([event for group in groups for event in group])
        return [None] * len(groups)
    except AuditError as exc:
        if len(groups) == 1:
            return [exc]
    errors: list[AuditError | None] = []
    for group in groups:
        try:
            trail.record_many(group)
            errors.append(None)
        except AuditError as exc:
            errors.append(exc)
    return errors


def to_event(entry: AuditEntry) -> AuditEvent:
    """Translate the runtime's entry into the trail's event (ids and enums only)."""
    chain = list(entry.on_behalf_of)
    if entry.actor.act_for and entry.actor.act_for not in chain:
        chain.append(entry.actor.act_for)
    task_id, chat_id, conversation_id = entry.task_id, entry.chat_id, entry.conversation_id
    if entry.type is EntryType.ACCESS_DENIED and entry.reason is EntryReason.NO_SUCH_RECORD:
        # An id that names no record is only what the caller typed, and that may be
        # anything: a patient's record number, a name. The attempt is recorded (who,
        # when, where, refused), the string is not. An id outside the trail's alphabet
        # would also make the record invalid, and the refusal unrecorded.
        task_id = chat_id = conversation_id = None
    return AuditEvent(
        type=AuditType(entry.type.value),
        workspace_id=entry.actor.workspace_id,
        actor_kind=_ACTOR_KINDS[entry.actor.role],
        actor_id=entry.actor.id,
        channel=entry.channel,
        reason=AuditReason(entry.reason.value),
        outcome=AuditOutcome.SUCCESS
        if entry.outcome is EntryOutcome.SUCCESS
        else AuditOutcome.MINOR_FAILURE,
        on_behalf_of=tuple(chain),
        task_id=task_id,
        chat_id=chat_id,
        conversation_id=conversation_id,
        request_id=entry.request_id,
    )

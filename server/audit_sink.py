"""The runtime's audit port on top of :mod:`audit`: entries become hash-chained records."""

from __future__ import annotations

import anyio
import anyio.to_thread

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


class TrailAuditSink:
    """An :class:`agents.ports.AuditSink` writing to an :class:`audit.AuditTrail`.

    Appends run in a worker thread, one at a time: the chain is serialized anyway, and
    one writer keeps the order of a conversation's reads the order of its records.
    """

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self._limiter = anyio.CapacityLimiter(1)
        self.written = 0
        self.failed = 0

    async def record(self, entry: AuditEntry) -> None:
        try:
            event = to_event(entry)
            await anyio.to_thread.run_sync(self.trail.record, event, limiter=self._limiter)
        except AuditError as exc:
            self.failed += 1
            raise Unavailable("audit trail unavailable") from exc
        self.written += 1


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

"""The runtime's audit port on top of :mod:`audit`: entries become hash-chained records."""

from __future__ import annotations

import anyio
import anyio.to_thread

from agents.exceptions import Unavailable
from agents.models import Role
from agents.ports import AuditEntry
from agents.ports import AuditOutcome as EntryOutcome
from agents.ports import AuditType as EntryType
from audit import (
    ActorKind,
    AuditError,
    AuditEvent,
    AuditOutcome,
    AuditReason,
    AuditTrail,
    AuditType,
    InvalidAuditField,
)
from audit.record import check_id

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
    if entry.type is EntryType.ACCESS_DENIED:
        # A refused look at an id outside the trail's alphabet (spaces, too long) names
        # a record that was never issued: the refusal is recorded without it, so that
        # the caller gets not_found like for any other unknown id, never "unavailable",
        # and what they typed stays out of the trail.
        task_id, chat_id, conversation_id = (
            _issued(task_id),
            _issued(chat_id),
            _issued(conversation_id),
        )
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


def _issued(record_id: str | None) -> str | None:
    """*record_id* if it could be an id the server issued, else ``None``."""
    if record_id is None:
        return None
    try:
        check_id("id", record_id)
    except InvalidAuditField:
        return None
    return record_id

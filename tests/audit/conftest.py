"""Fixtures for the audit trail's tests: a deterministic clock and a trail in memory."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from audit import (
    ActorKind,
    AuditEvent,
    AuditReason,
    AuditRecord,
    AuditTrail,
    AuditType,
    MemoryAuditBackend,
)

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class StepClock:
    """A clock that moves one minute forward on every reading."""

    def __init__(self) -> None:
        self._minutes = itertools.count()

    def __call__(self) -> datetime:
        return START + timedelta(minutes=next(self._minutes))


def make_event(**overrides: object) -> AuditEvent:
    """A valid ``PHI_RECORD_VIEWED`` event; keyword arguments replace its fields."""
    fields: dict[str, object] = {
        "type": AuditType.PHI_RECORD_VIEWED,
        "workspace_id": "ws_clinic",
        "actor_kind": ActorKind.PERSON,
        "actor_id": "user_7Qk2",
        "channel": "ws:task.status",
        "reason": AuditReason.OWNER,
        "task_id": "task_b3Xz-9_",
        "conversation_id": "conv_1",
        "request_id": "req_42",
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


@pytest.fixture
def event() -> Callable[..., AuditEvent]:
    return make_event


@pytest.fixture
def trail() -> AuditTrail:
    return AuditTrail(MemoryAuditBackend(), node_id="node-a", clock=StepClock())


@pytest.fixture
def chain(trail: AuditTrail) -> list[AuditRecord]:
    """Five records appended in order, across two workspaces."""
    for n in range(5):
        trail.record(make_event(workspace_id="ws_clinic" if n % 2 == 0 else "ws_other"))
    return list(trail.iter_records())

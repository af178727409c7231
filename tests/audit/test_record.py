"""Audit records: fields are typed and patterned so contents cannot slip in; hashing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from audit import (
    GENESIS_HASH,
    ActorKind,
    AuditAction,
    AuditEvent,
    AuditOutcome,
    AuditReason,
    AuditRecord,
    AuditType,
    InvalidAuditField,
)

EventFactory = Callable[..., AuditEvent]
WHEN = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def seal(event: AuditEvent, **overrides: object) -> AuditRecord:
    fields: dict[str, object] = {
        "id": "aud_1",
        "seq": 1,
        "recorded": WHEN,
        "node_id": "node-a",
        "prev_hash": GENESIS_HASH,
    }
    fields.update(overrides)
    return AuditRecord.seal(event, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "channel",
    [
        "ws:task.status",
        "ws:task.list",
        "agent:child_result",
        "ws:/v1/chats/{chat_id}/ws",
        "http:GET /v1/tasks/{task_id}",
        "http:GET /v1/chats/{chat_id}/events",
        "http:POST /v1/tasks/{task_id:str}/cancel",
    ],
)
def test_route_templates_are_valid_channels(event: EventFactory, channel: str) -> None:
    assert event(channel=channel).channel == channel


@pytest.mark.parametrize(
    "channel",
    [
        "",
        "task.status",  # no kind
        "ws:Patient Jane Doe asked about insulin",
        "http:GET /v1/tasks/{task_id}?after=3",
        "http:GET /v1/tasks/task_1 extra",
        "http:GET https://example.org/v1/tasks",
        "http:FETCH /v1/tasks",
        "ws:task.status\n",
        "ws:" + "a" * 200,
        "ws:{unclosed",
        "ws:naïve",
    ],
)
def test_free_text_channels_are_rejected(event: EventFactory, channel: str) -> None:
    with pytest.raises(InvalidAuditField, match="channel"):
        event(channel=channel)


@pytest.mark.parametrize("field", ["workspace_id", "actor_id", "task_id", "chat_id", "request_id"])
@pytest.mark.parametrize(
    "value",
    [
        "Jane Doe",
        "02/04/1980",
        "eyJhbGciOiJIUzI1NiJ9.e30.sig",  # a token has dots
        "task_1\n",
        "a" * 101,
        "",
        "Traceback (most recent call last):",
    ],
)
def test_ids_must_be_opaque_tokens(event: EventFactory, field: str, value: str) -> None:
    with pytest.raises(InvalidAuditField, match=field):
        event(**{field: value})


def test_error_messages_do_not_repeat_the_rejected_value(event: EventFactory) -> None:
    with pytest.raises(InvalidAuditField) as caught:
        event(actor_id="Jane Doe")
    assert "Jane" not in str(caught.value)


def test_on_behalf_of_holds_only_ids(event: EventFactory) -> None:
    assert event(on_behalf_of=("user_1", "agent_2")).on_behalf_of == ("user_1", "agent_2")
    with pytest.raises(InvalidAuditField, match="on_behalf_of"):
        event(on_behalf_of=("user_1", "Jane Doe"))
    with pytest.raises(InvalidAuditField, match="on_behalf_of"):
        event(on_behalf_of=["user_1"])
    with pytest.raises(InvalidAuditField, match="on_behalf_of"):
        event(on_behalf_of=tuple(f"p{n}" for n in range(9)))


def test_enumerated_fields_reject_plain_strings(event: EventFactory) -> None:
    with pytest.raises(InvalidAuditField, match="reason"):
        event(reason="the user looked fine to me")
    with pytest.raises(InvalidAuditField, match="type"):
        event(type="PHI_RECORD_VIEWED")
    with pytest.raises(InvalidAuditField, match="actor_kind"):
        event(actor_kind="person")


def test_access_denied_cannot_be_a_success(event: EventFactory) -> None:
    denied = event(type=AuditType.ACCESS_DENIED, reason=AuditReason.NOT_OWNER)
    assert seal(denied).outcome is AuditOutcome.MINOR_FAILURE
    with pytest.raises(InvalidAuditField, match="ACCESS_DENIED"):
        event(
            type=AuditType.ACCESS_DENIED,
            reason=AuditReason.NOT_OWNER,
            outcome=AuditOutcome.SUCCESS,
        )


@pytest.mark.parametrize(
    ("type_", "action"),
    [
        (AuditType.PHI_RECORD_VIEWED, AuditAction.READ),
        (AuditType.ACCESS_DENIED, AuditAction.READ),
        (AuditType.TASK_STARTED, AuditAction.CREATE),
        (AuditType.TASK_INSTRUCTED, AuditAction.UPDATE),
        (AuditType.TASK_CANCELLED, AuditAction.UPDATE),
    ],
)
def test_action_defaults_to_the_types_fhir_code(
    event: EventFactory, type_: AuditType, action: AuditAction
) -> None:
    reason = AuditReason.NOT_OWNER if type_ is AuditType.ACCESS_DENIED else AuditReason.OWNER
    assert seal(event(type=type_, reason=reason)).action is action


def test_a_denied_cancel_records_the_attempted_action(event: EventFactory) -> None:
    denied = event(
        type=AuditType.ACCESS_DENIED, reason=AuditReason.NOT_OWNER, action=AuditAction.UPDATE
    )
    assert seal(denied).action is AuditAction.UPDATE


@pytest.mark.parametrize(
    "recorded",
    [
        datetime(2025, 3, 1, 9, 30),  # naive
        datetime(2025, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_recorded_must_be_utc(event: EventFactory, recorded: datetime) -> None:
    with pytest.raises(InvalidAuditField, match="recorded"):
        seal(event(), recorded=recorded)


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 0), ("seq", True), ("seq", "1"), ("prev_hash", "abc"), ("node_id", "node a")],
)
def test_chain_fields_are_checked(event: EventFactory, field: str, value: object) -> None:
    with pytest.raises(InvalidAuditField, match=field):
        seal(event(), **{field: value})


def test_hash_is_sha256_of_sorted_compact_json_without_the_hash(event: EventFactory) -> None:
    record = seal(event(on_behalf_of=("user_1",)))
    body = record.to_dict()
    del body["hash"]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert record.canonical() == canonical
    assert record.hash == hashlib.sha256(canonical).hexdigest()
    assert b'"recorded":"2025-03-01T09:30:15.123456Z"' in canonical
    assert b'"outcome":"0"' in canonical


def test_the_hash_covers_every_field(event: EventFactory) -> None:
    record = seal(event())
    changes: dict[str, Any] = {
        "id": "aud_2",
        "seq": 2,
        "workspace_id": "ws_x",
        "type": AuditType.TASK_STARTED,
        "action": AuditAction.UPDATE,
        "recorded": WHEN + timedelta(microseconds=1),
        "outcome": AuditOutcome.SERIOUS_FAILURE,
        "reason": AuditReason.NO_SUCH_RECORD,
        "actor_kind": ActorKind.AGENT,
        "actor_id": "agent_1",
        "on_behalf_of": ("user_1",),
        "channel": "ws:task.list",
        "node_id": "node-b",
        "task_id": None,
        "chat_id": "chat_1",
        "conversation_id": "conv_2",
        "request_id": None,
        "prev_hash": "f" * 64,
    }
    assert set(changes) | {"hash"} == {f.name for f in dataclasses.fields(AuditRecord)}
    for name, value in changes.items():
        changed = dataclasses.replace(record, **{name: value})
        assert changed.computed_hash() != record.hash, name


def test_dict_round_trip(event: EventFactory) -> None:
    record = seal(event(on_behalf_of=("user_1", "agent_2"), chat_id=None))
    again = AuditRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert again.computed_hash() == record.hash


def test_from_dict_rejects_unknown_or_missing_fields(event: EventFactory) -> None:
    data = seal(event()).to_dict()
    with pytest.raises(InvalidAuditField, match="unknown"):
        AuditRecord.from_dict({**data, "text": "the patient said..."})
    del data["channel"]
    with pytest.raises(InvalidAuditField, match="missing"):
        AuditRecord.from_dict(data)


def test_from_dict_rejects_values_outside_the_enumerations(event: EventFactory) -> None:
    data = seal(event()).to_dict()
    with pytest.raises(InvalidAuditField):
        AuditRecord.from_dict({**data, "reason": "because Jane asked"})
    with pytest.raises(InvalidAuditField):
        AuditRecord.from_dict({**data, "recorded": "2025-03-01 09:30"})

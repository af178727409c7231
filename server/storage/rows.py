"""Records of :mod:`agents.models` ⇄ rows of :mod:`server.storage.tables`.

``*_values`` turn a record into the column values of its row (for ``INSERT`` and
upserts); ``*_from_row`` turn a row read back into the record. Timestamps must be
timezone-aware: a naive one raises :class:`ValueError` and is never stored, since it
would silently mean the server's local time. JSON columns are compact text with
non-ASCII kept as is, the same bytes on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from agents.models import (
    AgentDefinition,
    Author,
    Chat,
    ChatKind,
    Conversation,
    EventBody,
    EventType,
    Message,
    Patient,
    StreamEvent,
    Task,
    TaskState,
    TaskUpdate,
    body_from_json,
    body_to_json,
    rfc3339,
)
from server.protocol import encode
from server.storage.tables import (
    AgentRow,
    ChatRow,
    ConversationRow,
    EventRow,
    PatientRow,
    TaskRow,
)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware")
    return moment.astimezone(UTC)


def _dumps(value: Any) -> str:
    return encode(value)


def conversation_values(conversation: Conversation) -> dict[str, Any]:
    """The ``conversations`` row of *conversation*."""
    return {
        "id": conversation.id,
        "workspace_id": conversation.workspace_id,
        "person_id": conversation.person_id,
        "agent_id": conversation.agent_id,
        "chat_id": conversation.chat_id,
        "created_at": _utc(conversation.created_at),
    }


def conversation_from_row(row: ConversationRow | Row[Any]) -> Conversation:
    """The conversation a ``conversations`` row holds."""
    return Conversation(
        id=row.id,
        workspace_id=row.workspace_id,
        person_id=row.person_id,
        agent_id=row.agent_id,
        chat_id=row.chat_id,
        created_at=row.created_at,
    )


def chat_values(chat: Chat) -> dict[str, Any]:
    """The ``chats`` row of *chat*."""
    return {
        "id": chat.id,
        "workspace_id": chat.workspace_id,
        "conversation_id": chat.conversation_id,
        "kind": chat.kind.value,
        "title": chat.title,
        "agent_id": chat.agent.id,
        "agent_name": chat.agent.name,
        "person_id": chat.person_id,
        "created_at": _utc(chat.created_at),
        "task_id": chat.task_id,
    }


def chat_from_row(row: ChatRow) -> Chat:
    """The chat a ``chats`` row holds."""
    return Chat(
        id=row.id,
        workspace_id=row.workspace_id,
        conversation_id=row.conversation_id,
        kind=ChatKind(row.kind),
        title=row.title,
        agent=Author(row.agent_id, row.agent_name),
        person_id=row.person_id,
        created_at=row.created_at,
        task_id=row.task_id,
    )


_STORED_TYPES: dict[type, EventType] = {Message: EventType.MESSAGE, TaskUpdate: EventType.TASK}
"""The type of a stored event, by its body's (a preview is never stored)."""


def numbered_rows(
    numbered: Sequence[tuple[str, int, EventBody]], ts: datetime
) -> tuple[list[StreamEvent], list[dict[str, Any]]]:
    """The events of one commit, each with its frame encoded
    (:attr:`StreamEvent.wire`), and their ``events`` rows.

    Each body is encoded once, however many events carry it (a task's update goes in
    the conversation's stream and in the task's own chat): its frame is that text with
    the event's own fields in front, and a message's stored body the same text with
    its type in front — what encoding each whole would give, byte for byte.
    """
    stamp = rfc3339(ts)
    encoded: dict[int, tuple[str, str, str, str | None]] = {}
    quoted: dict[str, str] = {}
    events: list[StreamEvent] = []
    rows: list[dict[str, Any]] = []
    for chat_id, seq, body in numbered:
        found = encoded.get(id(body))
        if found is None:
            kind = _STORED_TYPES[type(body)]
            fields = encode(body.to_wire())
            # What follows the event's own fields: the body's, or just the brace.
            rest = "," + fields[1:] if fields != "{}" else "}"
            if isinstance(body, Message):
                stored = '{"type":"message"' + rest
                task_id = body.task_id
            else:
                assert isinstance(body, TaskUpdate)
                stored = _dumps(body_to_json(body))
                task_id = body.task.id
            found = encoded[id(body)] = (kind.value, rest, stored, task_id)
        kind_value, rest, stored, task_id = found
        chat = quoted.get(chat_id)
        if chat is None:
            chat = quoted[chat_id] = encode(chat_id)  # type: ignore[arg-type]
        # Field for field, and in order, what StreamEvent.to_wire builds.
        wire = f'{{"seq":{seq},"type":"{kind_value}","chat_id":{chat},"ts":"{stamp}"{rest}'
        events.append(StreamEvent(chat_id, seq, ts, body, wire=wire))
        rows.append(
            {
                "chat_id": chat_id,
                "seq": seq,
                "ts": ts,
                "type": kind_value,
                "task_id": task_id,
                "body": stored,
                "wire": wire,
            }
        )
    return events, rows


def event_from_row(row: EventRow) -> StreamEvent:
    """The stream event an ``events`` row holds."""
    return StreamEvent(
        chat_id=row.chat_id, seq=row.seq, ts=row.ts, body=body_from_json(json.loads(row.body))
    )


def task_values(task: Task) -> dict[str, Any]:
    """The ``tasks`` row of *task*."""
    return {
        "id": task.id,
        "workspace_id": task.workspace_id,
        "conversation_id": task.conversation_id,
        "chat_id": task.chat_id,
        "title": task.title,
        "agent_id": task.agent.id,
        "agent_name": task.agent.name,
        "state": task.state.value,
        "depth": task.depth,
        "parent_id": task.parent_id,
        "owner_agent_id": task.owner_agent_id,
        "person_id": task.person_id,
        "created_at": _utc(task.created_at),
        "updated_at": _utc(task.updated_at),
        "progress": task.progress,
        "result": task.result,
        "batch_id": task.batch_id,
        "node_id": task.node_id,
        "subject": task.subject,
        "params": _dumps(dict(task.params)),
        "followed_up": task.followed_up,
    }


def task_from_row(row: TaskRow) -> Task:
    """The task a ``tasks`` row holds."""
    return Task(
        id=row.id,
        workspace_id=row.workspace_id,
        conversation_id=row.conversation_id,
        chat_id=row.chat_id,
        title=row.title,
        agent=Author(row.agent_id, row.agent_name),
        state=TaskState(row.state),
        depth=row.depth,
        parent_id=row.parent_id,
        owner_agent_id=row.owner_agent_id,
        person_id=row.person_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        progress=row.progress,
        result=row.result,
        batch_id=row.batch_id,
        node_id=row.node_id,
        subject=row.subject,
        params=json.loads(row.params),
        followed_up=row.followed_up,
    )


def agent_values(agent: AgentDefinition) -> dict[str, Any]:
    """The ``agents`` row of *agent*."""
    return {
        "workspace_id": agent.workspace_id,
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "instructions": agent.instructions,
        "tools": _dumps(list(agent.tools)),
        "brain": agent.brain,
        "is_primary": agent.primary,
    }


def agent_from_row(row: AgentRow) -> AgentDefinition:
    """The agent definition an ``agents`` row holds."""
    return AgentDefinition(
        workspace_id=row.workspace_id,
        id=row.id,
        name=row.name,
        description=row.description,
        instructions=row.instructions,
        tools=tuple(json.loads(row.tools)),
        brain=row.brain,
        primary=row.is_primary,
    )


def patient_values(patient: Patient) -> dict[str, Any]:
    """The ``patients`` row of *patient*."""
    return {
        "workspace_id": patient.workspace_id,
        "id": patient.id,
        "name": patient.name,
        "date_of_birth": patient.date_of_birth,
        "mrn": patient.mrn,
        "phone": patient.phone,
        "onboarding_complete": patient.onboarding_complete,
        "medications": _dumps(list(patient.medications)),
        "allergies": _dumps(list(patient.allergies)),
        "conditions": _dumps(list(patient.conditions)),
        "provider": patient.provider,
        "insurer": patient.insurer,
    }


def patient_from_row(row: PatientRow) -> Patient:
    """The patient a ``patients`` row holds."""
    return Patient(
        workspace_id=row.workspace_id,
        id=row.id,
        name=row.name,
        date_of_birth=row.date_of_birth,
        mrn=row.mrn,
        phone=row.phone,
        onboarding_complete=row.onboarding_complete,
        medications=tuple(json.loads(row.medications)),
        allergies=tuple(json.loads(row.allergies)),
        conditions=tuple(json.loads(row.conditions)),
        provider=row.provider,
        insurer=row.insurer,
    )

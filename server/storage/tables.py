"""The SQL tables behind :class:`~server.storage.sql_store.SqlStore`.

One row class per record of :mod:`agents.models`; the store converts between them.
JSON columns (event bodies, task params, agent tools, a patient's lists) are plain
text, so SQLite and PostgreSQL hold the same bytes.

Invariants:

- ``chat_heads.last_seq`` is the ``seq`` of the chat's newest event (0 for none). It
  is created with its chat and moved forward only in the transaction that appends
  the events, which is what keeps ``seq`` gapless per chat.
- Every timestamp goes in timezone-aware and comes out timezone-aware in UTC
  (:class:`UtcDateTime`), whatever the backend keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Dialect, Index, MetaData, Table, Text, TypeDecorator
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 4
"""The schema this code writes; :func:`server.storage.engine.create_schema` records it."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware in UTC.

    PostgreSQL keeps the offset (``timestamptz``); SQLite keeps text without one, so
    the UTC value is stored naive there and ``UTC`` is attached again on the way out.
    Naive values are refused: they would silently mean the server's local time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class SchemaVersionRow(SQLModel, table=True):
    """One row per schema version applied; the highest is the database's version."""

    __tablename__ = "schema_version"

    version: int = Field(primary_key=True)
    applied_at: datetime = Field(sa_type=UtcDateTime)


class ConversationRow(SQLModel, table=True):
    __tablename__ = "conversations"

    id: str = Field(primary_key=True)
    workspace_id: str
    person_id: str
    agent_id: str
    # No foreign key: the conversation and its chat point at each other, and the
    # conversation is written first.
    chat_id: str
    created_at: datetime = Field(sa_type=UtcDateTime)
    # The fencing number of the conversation's current home (schema 2): moved up by
    # each node that takes the conversation over, and checked by every commit of it.
    home_fence: int = 0
    # Which process (``node_id/incarnation``) took it last (schema 3); NULL once it let go.
    home_owner: str | None = None


class NodeRow(SQLModel, table=True):
    """A running process's heartbeat: who is alive, as the store sees it (schema 3)."""

    __tablename__ = "nodes"

    owner: str = Field(primary_key=True)
    seen_at: datetime = Field(sa_type=UtcDateTime)


class ChatRow(SQLModel, table=True):
    __tablename__ = "chats"
    __table_args__ = (Index("ix_chats_person", "workspace_id", "person_id", "created_at"),)

    id: str = Field(primary_key=True)
    workspace_id: str
    conversation_id: str = Field(foreign_key="conversations.id")
    kind: str
    title: str
    agent_id: str
    agent_name: str
    person_id: str
    created_at: datetime = Field(sa_type=UtcDateTime)
    # No foreign key: a task's chat is written before the task (Changes order).
    task_id: str | None = None


class ChatHeadRow(SQLModel, table=True):
    """The per-chat ``seq`` counter; its row lock serializes appends on PostgreSQL."""

    __tablename__ = "chat_heads"

    chat_id: str = Field(primary_key=True, foreign_key="chats.id")
    last_seq: int = 0


class EventRow(SQLModel, table=True):
    """A stream event. The primary key (chat_id, seq) is also the paging index."""

    __tablename__ = "events"

    chat_id: str = Field(primary_key=True, foreign_key="chats.id")
    seq: int = Field(primary_key=True)
    ts: datetime = Field(sa_type=UtcDateTime)
    type: str
    task_id: str | None = None
    body: str = Field(sa_type=Text)
    wire: str | None = Field(default=None, sa_type=Text)
    """The event's frame as PROTOCOL.md sends it, encoded once when stored, so that a
    replay sends stored text (``None`` for events stored before schema 4)."""


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_conversation", "workspace_id", "conversation_id"),
        Index("ix_tasks_state", "state", "node_id"),
    )

    id: str = Field(primary_key=True)
    workspace_id: str
    conversation_id: str = Field(foreign_key="conversations.id")
    chat_id: str = Field(foreign_key="chats.id")
    title: str
    agent_id: str
    agent_name: str
    state: str
    depth: int
    # No foreign key: the tasks of one fan-out arrive together, in any order.
    parent_id: str | None = None
    owner_agent_id: str
    person_id: str
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    progress: str | None = Field(default=None, sa_type=Text)
    result: str | None = Field(default=None, sa_type=Text)
    batch_id: str | None = None
    node_id: str | None = None
    subject: str = ""
    params: str = Field(default="{}", sa_type=Text)
    followed_up: bool = False


class AgentRow(SQLModel, table=True):
    __tablename__ = "agents"

    workspace_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    name: str
    description: str = Field(sa_type=Text)
    instructions: str = Field(sa_type=Text)
    tools: str = Field(default="[]", sa_type=Text)
    brain: str = "rule"
    # ``primary`` is a reserved word in SQL.
    is_primary: bool = False


class PatientRow(SQLModel, table=True):
    __tablename__ = "patients"

    workspace_id: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    name: str
    date_of_birth: str
    mrn: str
    phone: str
    onboarding_complete: bool
    medications: str = Field(default="[]", sa_type=Text)
    allergies: str = Field(default="[]", sa_type=Text)
    conditions: str = Field(default="[]", sa_type=Text)
    provider: str = ""
    insurer: str = ""


class WorkspaceRow(SQLModel, table=True):
    """A workspace as last applied from its file: the whole spec, as JSON.

    ``revision`` grows by one with every apply that changed something; nodes compare
    it to what they run with to pick up changed agents and tools at the next turn.
    """

    __tablename__ = "workspaces"

    id: str = Field(primary_key=True)
    name: str
    revision: int
    digest: str
    spec: str = Field(sa_type=Text)
    applied_at: datetime = Field(sa_type=UtcDateTime)


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


SCHEMA_VERSIONS = _table("schema_version")
CONVERSATIONS = _table("conversations")
CHATS = _table("chats")
CHAT_HEADS = _table("chat_heads")
EVENTS = _table("events")
TASKS = _table("tasks")
AGENTS = _table("agents")
PATIENTS = _table("patients")
WORKSPACES = _table("workspaces")
NODES = _table("nodes")

# Parents before children, the order create_all needs. Only these are created: other
# packages' tables on SQLModel's shared metadata are theirs to create.
TABLES: tuple[Table, ...] = (
    SCHEMA_VERSIONS,
    CONVERSATIONS,
    CHATS,
    CHAT_HEADS,
    EVENTS,
    TASKS,
    AGENTS,
    PATIENTS,
    WORKSPACES,
    NODES,
)

METADATA: MetaData = SQLModel.metadata

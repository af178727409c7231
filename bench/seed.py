"""Databases prepared before the server starts: many conversations (P5, P8, P9), a long
chat (P6), a few events in each of many chats (P8).

Written through :class:`~server.storage.sql_store.SqlStore`, the server's own store, so
the rows are exactly what the server would have written; the server then opens the
file as it opens any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agents.models import (
    Author,
    Chat,
    ChatKind,
    Conversation,
    Message,
    MessageKind,
    MessageRole,
    new_id,
    utcnow,
)
from agents.ports import Changes, NewEvent
from bench.workspace import BENCH_WORKSPACE, DISPATCHER, bench_agents
from server.storage.engine import create_engine_for
from server.storage.sql_store import SqlStore

EVENT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class SeededConversation:
    conversation_id: str
    chat_id: str
    person: str


async def open_store(database: Path) -> SqlStore:
    """The store on *database*, with the schema and the bench's agents in place."""
    store = SqlStore(create_engine_for(f"sqlite:///{database}"))
    await store.create_schema()
    await store.save_agents(bench_agents())
    return store


async def seed_conversations(
    store: SqlStore, count: int, *, person_prefix: str = "person"
) -> list[SeededConversation]:
    """*count* conversations with the dispatcher, each of its own person."""
    seeded = []
    for i in range(count):
        person = f"{person_prefix}-{i}"
        now = utcnow()
        conversation = Conversation(
            id=new_id("conv"),
            workspace_id=BENCH_WORKSPACE,
            person_id=person,
            agent_id=DISPATCHER,
            chat_id=new_id("chat"),
            created_at=now,
        )
        chat = Chat(
            id=conversation.chat_id,
            workspace_id=BENCH_WORKSPACE,
            conversation_id=conversation.id,
            kind=ChatKind.CONVERSATION,
            title="Dispatcher",
            agent=Author(DISPATCHER, "Dispatcher"),
            person_id=person,
            created_at=now,
        )
        await store.create_conversation(conversation, chat)
        seeded.append(SeededConversation(conversation.id, chat.id, person))
    return seeded


async def seed_events(store: SqlStore, chat_id: str, count: int) -> int:
    """Append *count* alternating user and agent messages to *chat_id*; return last seq."""
    person = Author("person-0", "Person")
    agent = Author(DISPATCHER, "Dispatcher")
    last = 0
    for start in range(0, count, EVENT_BATCH):
        events = []
        for n in range(start, min(start + EVENT_BATCH, count)):
            if n % 2 == 0:
                body = Message(MessageRole.USER, person, MessageKind.REPLY, f"echo message {n}")
            else:
                body = Message(MessageRole.AGENT, agent, MessageKind.REPLY, f"echo message {n}")
            events.append(NewEvent(chat_id, body))
        stored = await store.commit(Changes(events=events))
        last = stored[-1].seq
    return last


async def seed_each_chat(store: SqlStore, chat_ids: list[str], per_chat: int) -> dict[str, int]:
    """Append *per_chat* agent messages to each of *chat_ids*, committed :data:`EVENT_BATCH`
    at a time across chats; return each chat's last seq."""
    agent = Author(DISPATCHER, "Dispatcher")
    pending = [
        NewEvent(chat_id, Message(MessageRole.AGENT, agent, MessageKind.REPLY, f"update {n}"))
        for chat_id in chat_ids
        for n in range(per_chat)
    ]
    last: dict[str, int] = {}
    for start in range(0, len(pending), EVENT_BATCH):
        for event in await store.commit(Changes(events=pending[start : start + EVENT_BATCH])):
            last[event.chat_id] = max(last.get(event.chat_id, 0), event.seq)
    return last

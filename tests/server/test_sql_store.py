"""SqlStore: one contract, on SQLite (a file) and on PostgreSQL (a fresh schema per test).

PostgreSQL tests skip when 127.0.0.1:5432 does not answer, and fail instead when
``CI=true``. The fan-out timing is printed, not asserted: run with ``-s`` to see it.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import anyio
import psycopg
import pytest
from alembic import command
from sqlalchemy import Engine, text

from agents.exceptions import Fenced, HomedElsewhere, NotFound, Unavailable
from agents.models import (
    AgentDefinition,
    Author,
    Chat,
    ChatKind,
    Conversation,
    Message,
    MessageKind,
    MessageRole,
    Patient,
    StreamEvent,
    Task,
    TaskState,
    TaskUpdate,
    new_id,
)
from agents.ports import Changes, Fence, NewEvent, PatientDirectory, Store, Unsettled
from server.protocol import encode
from server.storage import (
    SchemaTooNew,
    SqlStore,
    create_engine_for,
    create_schema,
    normalize_url,
    schema_version,
    sql_store,
)
from server.storage.engine import begin_write
from server.storage.sql_store import INLINE_MAX_FRAMES
from server.storage.tables import SCHEMA_VERSION, SCHEMA_VERSIONS

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

WS = "ws_main"
OTHER_WS = "ws_other"
PERSON = "person_ada"
PRIMARY = Author("agent_primary", "Front desk")
OUTREACH = Author("agent_outreach", "Outreach")
# Not UTC on purpose: the store must hand back the same instant, in UTC. Whole
# milliseconds, because a task inside an event body is stored at that precision.
T0 = datetime(2025, 3, 4, 10, 30, 15, 123000, tzinfo=timezone(timedelta(hours=2)))


# -- backends --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextmanager
def postgres_schema(reachable: bool) -> Iterator[str]:
    """A fresh schema, dropped afterwards; skips (fails under CI=true) without a server."""
    if not reachable:
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    schema = f"t_{secrets.token_hex(6)}"
    plain = POSTGRES_URL.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_reachable: bool
) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        engine = create_engine_for(f"sqlite:///{tmp_path / 'data' / 'switchboard.db'}")
        create_schema(engine)
        yield SqlStore(engine)
        engine.dispose()
        return
    with postgres_schema(postgres_reachable) as schema:
        engine = create_engine_for(
            POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}
        )
        create_schema(engine)
        yield SqlStore(engine)
        engine.dispose()


# -- records -----------------------------------------------------------------------------


def conversation_of(workspace_id: str = WS, person_id: str = PERSON) -> tuple[Conversation, Chat]:
    conversation_id, chat_id = new_id("conv"), new_id("chat")
    conversation = Conversation(
        id=conversation_id,
        workspace_id=workspace_id,
        person_id=person_id,
        agent_id=PRIMARY.id,
        chat_id=chat_id,
        created_at=T0,
    )
    chat = Chat(
        id=chat_id,
        workspace_id=workspace_id,
        conversation_id=conversation_id,
        kind=ChatKind.CONVERSATION,
        title="Front desk",
        agent=PRIMARY,
        person_id=person_id,
        created_at=T0,
    )
    return conversation, chat


def task_of(
    conversation: Conversation,
    *,
    state: TaskState = TaskState.WORKING,
    node_id: str | None = "node_a",
    at: datetime = T0,
) -> tuple[Task, Chat]:
    task_id, chat_id = new_id("task"), new_id("chat")
    task = Task(
        id=task_id,
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        chat_id=chat_id,
        title="Prior auth: Ozempic",
        agent=OUTREACH,
        state=state,
        depth=2,
        parent_id=new_id("task"),
        owner_agent_id=PRIMARY.id,
        person_id=conversation.person_id,
        created_at=at,
        updated_at=at + timedelta(seconds=5),
        progress="On hold with the payer",
        result=None if not state.is_terminal else "Approved — ref 55-1",
        batch_id=new_id("batch"),
        node_id=node_id,
        subject="patient_42",
        params={"drug": "Ozempic", "doses": [1, 2], "urgent": True, "note": None},
    )
    chat = Chat(
        id=chat_id,
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        kind=ChatKind.TASK,
        title=task.title,
        agent=OUTREACH,
        person_id=conversation.person_id,
        created_at=at,
        task_id=task_id,
    )
    return task, chat


def say(text: str, task_id: str | None = None) -> Message:
    return Message(MessageRole.AGENT, PRIMARY, MessageKind.PROGRESS, text, task_id=task_id)


async def started(store: SqlStore, workspace_id: str = WS) -> tuple[Conversation, Chat]:
    conversation, chat = conversation_of(workspace_id)
    await store.create_conversation(conversation, chat)
    return conversation, chat


def assert_utc(moment: datetime) -> None:
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


# -- the contract ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_conversation_and_chat_round_trip(store: SqlStore) -> None:
    # mypy checks that SqlStore satisfies both ports.
    as_store: Store = store
    as_directory: PatientDirectory = store
    conversation, chat = await started(store)

    assert await as_store.get_conversation(WS, conversation.id) == conversation
    assert await as_directory.list_patients(WS) == []
    assert await store.get_chat(WS, chat.id) == chat
    assert await store.last_seq(chat.id) == 0
    assert await store.events_after(chat.id, 0, 100) == []
    found = await store.get_conversation(WS, conversation.id)
    assert found is not None
    assert_utc(found.created_at)


@pytest.mark.anyio
async def test_commit_round_trips_chats_tasks_and_events(store: SqlStore) -> None:
    conversation, chat = await started(store)
    task, task_chat = task_of(conversation)

    stored = await store.commit(
        Changes(
            chats=[task_chat],
            tasks=[task],
            events=[
                NewEvent(chat.id, TaskUpdate(task)),
                NewEvent(chat.id, say("Started the prior auth.", task_id=task.id)),
                NewEvent(task_chat.id, say("Calling the payer.")),
            ],
        )
    )

    assert [(e.chat_id, e.seq) for e in stored] == [(chat.id, 1), (chat.id, 2), (task_chat.id, 1)]
    assert await store.get_task(WS, task.id) == task
    assert await store.get_chat(WS, task_chat.id) == task_chat
    assert await store.events_after(chat.id, 0, 10) == stored[:2]
    assert await store.events_after(task_chat.id, 0, 10) == stored[2:]
    assert await store.last_seq(chat.id) == 2
    assert await store.last_seq(task_chat.id) == 1
    for event in stored:
        assert_utc(event.ts)
        assert abs(event.ts - datetime.now(UTC)) < timedelta(minutes=1)
    replayed = (await store.events_after(chat.id, 0, 10))[0]
    assert replayed.to_wire() == stored[0].to_wire()
    assert replayed.task_id == task.id


@pytest.mark.anyio
async def test_stored_events_carry_the_frame_they_are_sent_as(store: SqlStore) -> None:
    conversation, chat = await started(store)
    task, task_chat = task_of(conversation)
    update = TaskUpdate(task)  # one body in both chats, as the runtime commits it

    stored = await store.commit(
        Changes(
            chats=[task_chat],
            tasks=[task],
            events=[
                NewEvent(chat.id, update),
                NewEvent(task_chat.id, update),
                NewEvent(chat.id, say("Ça marche — I'll call them.", task_id=task.id)),
            ],
        )
    )

    for event in stored:
        assert event.wire == encode(event.to_wire())
    assert stored[0].wire != stored[1].wire  # its own chat and seq in each
    frames = await store.frames_after(chat.id, 0, 10)
    assert [f.text for f in frames] == [stored[0].wire, stored[2].wire]
    [in_task_chat] = await store.frames_after(task_chat.id, 0, 10)
    assert in_task_chat.text == stored[1].wire
    assert [e.body for e in await store.events_after(task_chat.id, 0, 10)] == [update]


@pytest.mark.anyio
async def test_commit_replaces_a_task_by_id(store: SqlStore) -> None:
    conversation, _ = await started(store)
    task, task_chat = task_of(conversation)
    await store.commit(Changes(chats=[task_chat], tasks=[task]))

    done = replace(
        task,
        state=TaskState.COMPLETED,
        result="Approved",
        progress=None,
        updated_at=T0 + timedelta(minutes=3),
        params={},
    )
    await store.commit(Changes(tasks=[done]))

    assert await store.get_task(WS, task.id) == done
    assert await store.list_tasks(WS, conversation.id) == [done]


@pytest.mark.anyio
async def test_timestamps_come_back_aware_in_utc(store: SqlStore) -> None:
    conversation, chat = await started(store)
    task, task_chat = task_of(conversation)
    await store.commit(Changes(chats=[task_chat], tasks=[task]))

    found_task = await store.get_task(WS, task.id)
    found_chat = await store.get_chat(WS, chat.id)
    assert found_task is not None
    assert found_chat is not None
    for moment in (found_task.created_at, found_task.updated_at, found_chat.created_at):
        assert_utc(moment)
    assert found_task.created_at == T0
    assert found_task.created_at.hour == 8  # 10:30 at +02:00


@pytest.mark.anyio
async def test_naive_timestamps_are_refused(store: SqlStore) -> None:
    conversation, chat = conversation_of()
    naive = replace(conversation, created_at=datetime(2025, 1, 1, 12, 0))

    with pytest.raises(ValueError, match="naive"):
        await store.create_conversation(naive, chat)
    assert await store.get_conversation(WS, conversation.id) is None


@pytest.mark.anyio
async def test_list_chats_newest_first_for_that_person_only(store: SqlStore) -> None:
    conversation, chat = await started(store)
    first, first_chat = task_of(conversation, at=T0 + timedelta(minutes=1))
    second, second_chat = task_of(conversation, at=T0 + timedelta(minutes=2))
    await store.commit(Changes(chats=[first_chat, second_chat], tasks=[first, second]))
    stranger, stranger_chat = conversation_of(person_id="person_bob")
    await store.create_conversation(stranger, stranger_chat)

    assert await store.list_chats(WS, PERSON) == [second_chat, first_chat, chat]
    assert await store.list_chats(WS, "person_bob") == [stranger_chat]


@pytest.mark.anyio
async def test_list_tasks_oldest_first(store: SqlStore) -> None:
    conversation, _ = await started(store)
    late, late_chat = task_of(conversation, at=T0 + timedelta(minutes=9))
    early, early_chat = task_of(conversation, at=T0)
    other_conversation, _ = await started(store)
    elsewhere, elsewhere_chat = task_of(other_conversation)
    await store.commit(
        Changes(chats=[late_chat, early_chat, elsewhere_chat], tasks=[late, early, elsewhere])
    )

    assert await store.list_tasks(WS, conversation.id) == [early, late]


@pytest.mark.anyio
async def test_events_after_pages_in_seq_order(store: SqlStore) -> None:
    _, chat = await started(store)
    for n in range(1, 26):
        await store.commit(Changes(events=[NewEvent(chat.id, say(f"update {n}"))]))

    pages: list[list[StreamEvent]] = []
    after = 0
    while page := await store.events_after(chat.id, after, 10):
        pages.append(page)
        after = page[-1].seq

    assert [len(p) for p in pages] == [10, 10, 5]
    events = [e for p in pages for e in p]
    assert [e.seq for e in events] == list(range(1, 26))
    assert [e.body for e in events] == [say(f"update {n}") for n in range(1, 26)]
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert await store.events_after(chat.id, 25, 10) == []
    assert await store.events_after(chat.id, 3, 0) == []
    assert [e.seq for e in await store.events_after(chat.id, 22, 100)] == [23, 24, 25]


@pytest.mark.anyio
async def test_frames_after_are_the_frames_sent_live_even_for_events_stored_before_them(
    store: SqlStore,
) -> None:
    conversation, chat = await started(store)
    task, task_chat = task_of(conversation, state=TaskState.WORKING)
    await store.commit(
        Changes(
            chats=[task_chat],
            tasks=[task],
            events=[NewEvent(chat.id, say("before 1")), NewEvent(chat.id, TaskUpdate(task))],
        )
    )
    # Events stored by a server before schema 4 have no stored frame.
    with begin_write(store.engine) as connection:
        connection.execute(text("UPDATE events SET wire = NULL"))
    for n in range(1, 4):
        await store.commit(Changes(events=[NewEvent(chat.id, say(f"after {n}"))]))

    frames = await store.frames_after(chat.id, 0, 10)
    events = await store.events_after(chat.id, 0, 10)
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
    assert [f.task_id for f in frames] == [None, task.id, None, None, None]
    assert [json.loads(f.text) for f in frames] == [e.to_wire() for e in events]
    assert [f.text for f in frames] == [encode(e.to_wire()) for e in events]
    assert [f.seq for f in await store.frames_after(chat.id, 3, 1)] == [4]
    assert await store.frames_after(chat.id, 5, 10) == []
    assert await store.frames_after(chat.id, 0, 0) == []


@pytest.mark.anyio
async def test_conversations_with_unfinished_tasks_are_unsettled(store: SqlStore) -> None:
    conversation, _ = await started(store)
    records = {
        state: task_of(conversation, state=state, at=T0 + timedelta(seconds=i))
        for i, state in enumerate(TaskState)
    }
    # Depth 2 (task_of's): an ended one is its parent's to read, never announced.
    await store.commit(
        Changes(
            chats=[chat for _, chat in records.values()],
            tasks=[task for task, _ in records.values()],
        )
    )
    settled, _ = await started(store)
    ended, ended_chat = task_of(settled, state=TaskState.COMPLETED)
    await store.commit(Changes(chats=[ended_chat], tasks=[ended]))

    unsettled = {u.conversation_id: u for u in await store.unsettled()}
    assert unsettled[conversation.id] == Unsettled(WS, conversation.id, running=True)
    assert settled.id not in unsettled

    running = [records[s][0] for s in TaskState if not s.is_terminal]
    await store.commit(
        Changes(tasks=[replace(task, state=TaskState.INTERRUPTED) for task in running])
    )
    assert conversation.id not in {u.conversation_id for u in await store.unsettled()}


@pytest.mark.anyio
async def test_workspace_scoping(store: SqlStore) -> None:
    conversation, chat = await started(store)
    task, task_chat = task_of(conversation)
    await store.commit(Changes(chats=[task_chat], tasks=[task]))

    assert await store.get_task(OTHER_WS, task.id) is None
    assert await store.get_chat(OTHER_WS, chat.id) is None
    assert await store.get_chat(OTHER_WS, task_chat.id) is None
    assert await store.get_conversation(OTHER_WS, conversation.id) is None
    assert await store.list_chats(OTHER_WS, PERSON) == []
    assert await store.list_tasks(OTHER_WS, conversation.id) == []
    assert await store.get_task(WS, new_id("task")) is None


@pytest.mark.anyio
async def test_agents_round_trip_upsert_and_scope(store: SqlStore) -> None:
    primary = AgentDefinition(
        workspace_id=WS,
        id=PRIMARY.id,
        name=PRIMARY.name,
        description="Answers the phone",
        instructions="Be brief.\nNever guess.",
        tools=("delegate", "task_status"),
        brain="openai",
        primary=True,
    )
    outreach = AgentDefinition(WS, OUTREACH.id, "Outreach", "Calls people", "Call them.")
    same_id_elsewhere = replace(outreach, workspace_id=OTHER_WS, name="Other outreach")
    await store.save_agents([outreach, primary, same_id_elsewhere])

    assert await store.list_agents(WS) == [primary, outreach]
    assert await store.list_agents(OTHER_WS) == [same_id_elsewhere]
    assert await store.list_agents("ws_empty") == []

    renamed = replace(outreach, name="Outreach desk", tools=("place_call",))
    await store.save_agents([renamed])
    assert await store.list_agents(WS) == [primary, renamed]
    assert await store.list_agents(OTHER_WS) == [same_id_elsewhere]


@pytest.mark.anyio
async def test_patients_round_trip_upsert_and_scope(store: SqlStore) -> None:
    ada = Patient(
        workspace_id=WS,
        id="patient_42",
        name="Ada Quill",
        date_of_birth="1961-07-02",
        mrn="MRN-0042",
        phone="+1 555 0100",
        onboarding_complete=True,
        medications=("Ozempic 0.5 mg", "Metformin"),
        allergies=("penicillin",),
        conditions=("type 2 diabetes",),
        provider="Dr. Okafor",
        insurer="Acme Health",
    )
    bo = Patient(WS, "patient_7", "Bo Lind", "1990-01-31", "MRN-7", "+1 555 0101", False)
    await store.save_patients([ada, bo])

    assert await store.get_patient(WS, ada.id) == ada
    assert await store.get_patient(OTHER_WS, ada.id) is None
    assert await store.list_patients(WS) == [ada, bo]
    assert await store.list_patients(OTHER_WS) == []

    onboarded = replace(bo, onboarding_complete=True, allergies=("latex", "nuts"))
    await store.save_patients([onboarded])
    assert await store.get_patient(WS, bo.id) == onboarded


@pytest.mark.anyio
async def test_a_failed_commit_stores_nothing(store: SqlStore) -> None:
    conversation, chat = await started(store)
    await store.commit(Changes(events=[NewEvent(chat.id, say("before"))]))
    task, task_chat = task_of(conversation)

    with pytest.raises(Unavailable, match=r"^store unavailable$"):
        await store.commit(
            Changes(
                chats=[task_chat, chat],  # the conversation's chat exists already
                tasks=[task],
                events=[NewEvent(chat.id, say("lost")), NewEvent(task_chat.id, say("lost"))],
            )
        )
    with pytest.raises(NotFound):
        await store.commit(
            Changes(
                chats=[task_chat],
                tasks=[task],
                events=[NewEvent(chat.id, say("lost")), NewEvent(new_id("chat"), say("lost"))],
            )
        )

    assert await store.get_chat(WS, task_chat.id) is None
    assert await store.get_task(WS, task.id) is None
    assert await store.last_seq(chat.id) == 1
    assert [e.body for e in await store.events_after(chat.id, 0, 10)] == [say("before")]
    assert await store.last_seq(task_chat.id) == 0
    # The failures left no gap: the next event takes the next seq.
    [after] = await store.commit(Changes(events=[NewEvent(chat.id, say("after"))]))
    assert after.seq == 2


@pytest.mark.anyio
async def test_concurrent_committers_get_gapless_seqs(store: SqlStore) -> None:
    _, chat = await started(store)
    committers, per_committer = 20, 50
    returned: dict[int, list[int]] = {}

    async def commit_many(committer: int) -> None:
        mine = returned.setdefault(committer, [])
        for n in range(per_committer):
            body = say(f"{committer}:{n}")
            [event] = await store.commit(Changes(events=[NewEvent(chat.id, body)]))
            mine.append(event.seq)

    with anyio.fail_after(50):
        async with anyio.create_task_group() as tg:
            for committer in range(committers):
                tg.start_soon(commit_many, committer)

    total = committers * per_committer
    stored = await store.events_after(chat.id, 0, total + 10)
    assert [e.seq for e in stored] == list(range(1, total + 1))
    assert sorted(s for seqs in returned.values() for s in seqs) == list(range(1, total + 1))
    texts = [e.body.text for e in stored if isinstance(e.body, Message)]
    for committer, seqs in returned.items():
        # Each committer's own events are stored in the order it committed them.
        assert seqs == sorted(seqs)
        assert [t for t in texts if t.startswith(f"{committer}:")] == [
            f"{committer}:{n}" for n in range(per_committer)
        ]
    assert await store.last_seq(chat.id) == total


@pytest.mark.anyio
async def test_concurrent_batches_into_shared_chats_stay_gapless(store: SqlStore) -> None:
    _, first = await started(store)
    _, second = await started(store)

    async def commit_batch(n: int) -> None:
        # Alternate the order the chats appear in, so head locks could cross.
        chats = (first, second) if n % 2 else (second, first)
        await store.commit(Changes(events=[NewEvent(c.id, say(f"{n}")) for c in chats * 3]))

    with anyio.fail_after(50):
        async with anyio.create_task_group() as tg:
            for n in range(40):
                tg.start_soon(commit_batch, n)

    for chat in (first, second):
        assert [e.seq for e in await store.events_after(chat.id, 0, 500)] == list(range(1, 121))


@pytest.mark.anyio
async def test_fan_out_of_a_thousand_tasks_in_one_commit(
    store: SqlStore, capsys: pytest.CaptureFixture[str], anyio_backend: str
) -> None:
    conversation, chat = await started(store)
    fan_out = [task_of(conversation, state=TaskState.SUBMITTED) for _ in range(1000)]
    changes = Changes(
        chats=[c for _, c in fan_out],
        tasks=[t for t, _ in fan_out],
        events=[NewEvent(chat.id, TaskUpdate(t)) for t, _ in fan_out]
        + [NewEvent(c.id, say("Starting.")) for _, c in fan_out],
    )

    started_at = time.perf_counter()
    stored = await store.commit(changes)
    elapsed = time.perf_counter() - started_at

    with capsys.disabled():
        backend = store.engine.dialect.name
        print(f"\n[{backend}/{anyio_backend}] 1,000 tasks + chats + 2,000 events: {elapsed:.3f} s")
    assert len(stored) == 2000
    assert await store.last_seq(chat.id) == 1000
    assert len(await store.list_tasks(WS, conversation.id)) == 1000
    assert [u.running for u in await store.unsettled() if u.conversation_id == conversation.id] == [
        True
    ]
    some_chat = fan_out[500][1]
    assert [e.seq for e in await store.events_after(some_chat.id, 0, 10)] == [1]


@pytest.mark.anyio
async def test_ping_and_close(store: SqlStore) -> None:
    await store.ping()
    await store.close()
    await store.ping()  # a closed store's engine reconnects on demand


# -- engines and schema --------------------------------------------------------------


@pytest.mark.anyio
async def test_unreachable_database_is_unavailable_without_details(tmp_path: Path) -> None:
    # The database "file" is a directory: SQLite cannot open it.
    (tmp_path / "db").mkdir()
    store = SqlStore(create_engine_for(f"sqlite:///{tmp_path / 'db'}"))

    with pytest.raises(Unavailable) as caught:
        await store.ping()
    assert str(caught.value) == "store unavailable"
    with pytest.raises(Unavailable, match=r"^store unavailable$"):
        await store.get_task(WS, "task_x")
    await store.close()


@pytest.mark.anyio
async def test_unreachable_postgres_is_unavailable() -> None:
    store = SqlStore(create_engine_for("postgresql://postgres@127.0.0.1:1/none"))
    with pytest.raises(Unavailable, match=r"^store unavailable$"):
        await store.ping()
    await store.close()


def test_sqlite_engine_creates_the_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "store.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert path.exists()
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
        "busy_timeout": 5000,
    }


@pytest.mark.anyio
async def test_in_memory_sqlite_is_one_shared_database() -> None:
    engine = create_engine_for("sqlite://")
    create_schema(engine)
    store = SqlStore(engine)
    conversation, _ = await started(store)
    assert await store.get_conversation(WS, conversation.id) == conversation
    await store.close()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u:p@db.example:5432/app", "postgresql+psycopg"),
        ("postgresql://u:p@db.example:5432/app", "postgresql+psycopg"),
        ("postgresql+psycopg://u:p@db.example:5432/app", "postgresql+psycopg"),
        ("sqlite:///data/switchboard.db", "sqlite"),
    ],
)
def test_urls_are_normalised(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver
    engine = create_engine_for(url) if driver != "sqlite" else None
    if engine is not None:
        assert engine.url.drivername == driver
        assert engine.url.host == "db.example"
        engine.dispose()


def test_unsupported_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        create_engine_for("mysql://u@h/db")


def test_schema_is_created_once_and_versioned(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        assert schema_version(engine) == 0
        create_schema(engine)
        create_schema(engine)  # a restart: nothing to do
        assert schema_version(engine) == SCHEMA_VERSION
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT count(*) FROM schema_version")).scalar()
        assert rows == 1

        with begin_write(engine) as connection:
            connection.execute(SCHEMA_VERSIONS.insert().values(version=99, applied_at=T0))
        with pytest.raises(SchemaTooNew):
            create_schema(engine)
    finally:
        engine.dispose()


def test_schema_has_the_paging_and_lookup_indexes(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    engine = create_engine_for(f"sqlite:///{path}")
    create_schema(engine)
    engine.dispose()
    with sqlite3.connect(path) as connection:
        indexes = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    connection.close()
    assert {"ix_chats_person", "ix_tasks_conversation", "ix_tasks_state"} <= indexes
    # events' primary key (chat_id, seq) is its unique paging index
    assert any(name.startswith("sqlite_autoindex_events") for name in indexes)


@pytest.mark.postgres
def test_postgres_schema_creation_is_idempotent(postgres_reachable: bool) -> None:
    with postgres_schema(postgres_reachable) as schema:
        engine = create_engine_for(
            POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}
        )
        try:
            create_schema(engine)
            create_schema(engine)
            assert schema_version(engine) == SCHEMA_VERSION
        finally:
            engine.dispose()


@pytest.mark.anyio
async def test_group_commit_coalesces_and_isolates_a_bad_commit(store: SqlStore) -> None:
    conversation, chat = await started(store)
    task, task_chat = task_of(conversation)
    returned: dict[int, list[int]] = {}
    failures: list[type[Exception]] = []

    async def commit_many(committer: int) -> None:
        mine = returned.setdefault(committer, [])
        for n in range(20):
            body = say(f"{committer}:{n}")
            [event] = await store.commit(Changes(events=[NewEvent(chat.id, body)]))
            mine.append(event.seq)

    async def commit_bad() -> None:
        try:
            await store.commit(Changes(events=[NewEvent(new_id("chat"), say("lost"))]))
        except NotFound as exc:
            failures.append(type(exc))

    async with anyio.create_task_group() as tg:
        await tg.start(store.run)
        async with anyio.create_task_group() as writers:
            for committer in range(20):
                writers.start_soon(commit_many, committer)
            writers.start_soon(commit_bad)
            writers.start_soon(
                store.commit,
                Changes(chats=[task_chat], tasks=[task], events=[NewEvent(task_chat.id, say("t"))]),
            )
        tg.cancel_scope.cancel()

    assert failures == [NotFound]
    stored = await store.events_after(chat.id, 0, 1000)
    assert [e.seq for e in stored] == list(range(1, 401))
    for seqs in returned.values():
        assert seqs == sorted(seqs)
    assert sorted(s for seqs in returned.values() for s in seqs) == list(range(1, 401))
    assert await store.get_task(WS, task.id) == task
    statistics = store.statistics()
    # Fewer transactions than commits: that is the point.
    assert statistics["commits"] == 402
    assert statistics["batches"] < statistics["commits"]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'switchboard.db'}")
    create_schema(engine)
    yield SqlStore(engine)
    engine.dispose()


@pytest.mark.anyio
async def test_sqlite_commits_are_written_in_the_event_loop_and_the_wal_checkpointed(
    sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    monkeypatch.setattr(sql_store, "CHECKPOINT_EVERY_BATCHES", 50)
    conversation, chat = await started(store)
    task, task_chat = task_of(conversation)
    async with anyio.create_task_group() as tg:
        await tg.start(store.run)
        await store.commit(Changes(chats=[task_chat], tasks=[task]))
        for n in range(120):
            await store.commit(
                Changes(
                    tasks=[replace(task, progress=f"step {n}")],
                    events=[NewEvent(chat.id, say(f"{n}")), NewEvent(task_chat.id, say(f"{n}"))],
                )
            )
        for _ in range(500):  # each after 50 batches, or a second after the first
            if store.checkpoints >= 2:
                break
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()

    assert store.checkpoints >= 2

    statistics = store.statistics()
    # Each batch in the event loop, but those that came while a checkpoint ran.
    assert statistics["batches"] == 121
    assert 0 < statistics["inline_batches"] <= 121
    # What the event loop wrote is what a worker thread reads back, row for row.
    stored = await store.events_after(chat.id, 0, 1000)
    assert [e.seq for e in stored] == list(range(1, 121))
    assert [e.body for e in stored] == [say(f"{n}") for n in range(120)]
    assert (await store.get_task(WS, task.id)) == replace(task, progress="step 119")
    # The WAL was copied into the database file: a fresh reader that ignores the WAL
    # (immutable) finds the rows there.
    database = store.engine.url.database
    assert database is not None
    with sqlite3.connect(f"file:{database}?immutable=1", uri=True) as plain:
        (in_file,) = plain.execute("SELECT count(*) FROM events").fetchone()
    assert in_file >= 100


@pytest.mark.anyio
async def test_a_writer_elsewhere_sends_commits_to_a_worker_thread_and_the_loop_runs_on(
    sqlite_store: SqlStore,
) -> None:
    store = sqlite_store
    _, chat = await started(store)
    database = store.engine.url.database
    assert database is not None
    # Another process's writer (a second connection, outside the store's own lock)
    # holds the database's write lock.
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0
    stored: list[int] = []

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async def commit() -> None:
        [event] = await store.commit(Changes(events=[NewEvent(chat.id, say("waits"))]))
        stored.append(event.seq)

    try:
        async with anyio.create_task_group() as tg:
            await tg.start(store.run)
            tg.start_soon(tick)
            async with anyio.create_task_group() as writers:
                writers.start_soon(commit)
                await anyio.sleep(0.5)
                # The commit waits in a worker thread, not in the event loop.
                assert stored == []
                assert ticks >= 20
                other.execute("COMMIT")
            tg.cancel_scope.cancel()
    finally:
        other.close()

    assert stored == [1]
    assert store.statistics()["inline_batches"] == 0
    # Once the other writer has gone, the loop writes again.
    async with anyio.create_task_group() as tg:
        await tg.start(store.run)
        await store.commit(Changes(events=[NewEvent(chat.id, say("next"))]))
        tg.cancel_scope.cancel()
    assert store.statistics()["inline_batches"] == 1
    assert [e.seq for e in await store.events_after(chat.id, 0, 10)] == [1, 2]


@pytest.mark.anyio
async def test_sqlite_one_row_reads_are_made_in_the_event_loop_and_fall_back_to_a_thread(
    sqlite_store: SqlStore,
) -> None:
    store = sqlite_store
    conversation, chat = await started(store)
    await store.commit(Changes(events=[NewEvent(chat.id, say("one"))]))
    database = store.engine.url.database
    assert database is not None
    async with anyio.create_task_group() as tg:
        await tg.start(store.run)
        assert await store.get_conversation(WS, conversation.id) == conversation
        assert await store.get_conversation("another-workspace", conversation.id) is None
        assert await store.last_seq(chat.id) == 1
        assert await store.last_seq("no-such-chat") == 0
        assert store.statistics()["inline_reads"] == 4
        # The conversation's time as the ORM reads it: the same instant, in UTC.
        read = await store.get_conversation(WS, conversation.id)
        assert read is not None
        assert read.created_at.tzinfo is not None
        assert read.created_at == conversation.created_at
        assert store.statistics()["inline_reads"] == 5
        [frame] = await store.frames_after(chat.id, 0, 10)
        assert (frame.seq, frame.task_id) == (1, None)
        assert json.loads(frame.text)["seq"] == 1
        assert await store.frames_after(chat.id, 1, 10) == []
        assert store.statistics()["inline_reads"] == 7
        # A page longer than INLINE_MAX_FRAMES is read from a worker thread.
        assert len(await store.frames_after(chat.id, 0, INLINE_MAX_FRAMES + 1)) == 1
        assert store.statistics()["inline_reads"] == 7
        # An event stored before schema 4 has no frame: the page is read again from a
        # worker thread, which rebuilds it.
        with begin_write(store.engine) as connection:
            connection.execute(text("UPDATE events SET wire = NULL"))
        [rebuilt] = await store.frames_after(chat.id, 0, 10)
        assert rebuilt == frame
        assert store.statistics()["inline_reads"] == 8
        await store.commit(Changes(events=[NewEvent(chat.id, say("two"))]))
        await store.commit(Changes(events=[NewEvent(chat.id, say("three"))]))
        assert [f.seq for f in await store.frames_after(chat.id, 1, 1)] == [2]
        assert store.statistics()["inline_reads"] == 9
        # A writer elsewhere, mid-transaction, holds no reader back (WAL): the read
        # sees what was committed, and the loop is not made to wait.
        other = sqlite3.connect(database, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE chat_heads SET last_seq = 7 WHERE chat_id = ?", (chat.id,))
            assert await store.last_seq(chat.id) == 3
            other.execute("COMMIT")
        finally:
            other.close()
        assert await store.last_seq(chat.id) == 7
        assert store.statistics()["inline_reads"] == 11
        # The reader's connection lost: the read is made again from a worker thread,
        # and so is every one after.
        reader = store._reader
        assert reader is not None
        driver = reader.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.close()
        assert await store.last_seq(chat.id) == 7
        assert await store.get_conversation(WS, conversation.id) == conversation
        assert store.statistics()["inline_reads"] == 11
        tg.cancel_scope.cancel()


# -- homes: fencing and follow-ups -----------------------------------------------------


@pytest.mark.anyio
async def test_a_commit_under_a_stale_fence_is_refused_whole(store: SqlStore) -> None:
    conversation, chat = await started(store)
    old = await store.take_home(conversation.id)
    [first] = await store.commit(
        Changes(events=[NewEvent(chat.id, say("a"))], fence=Fence(conversation.id, old))
    )
    new = await store.take_home(conversation.id)  # another node takes it over
    assert new == old + 1
    task, task_chat = task_of(conversation)
    with pytest.raises(Fenced):
        await store.commit(
            Changes(
                chats=[task_chat],
                tasks=[task],
                events=[NewEvent(chat.id, say("stale"))],
                fence=Fence(conversation.id, old),
            )
        )
    # Nothing of it was stored: no event, no task, no chat.
    assert await store.last_seq(chat.id) == first.seq
    assert await store.get_task(WS, task.id) is None
    assert await store.get_chat(WS, task_chat.id) is None
    [second] = await store.commit(
        Changes(events=[NewEvent(chat.id, say("b"))], fence=Fence(conversation.id, new))
    )
    assert second.seq == first.seq + 1
    with pytest.raises(NotFound):
        await store.take_home(new_id("conv"))


@pytest.mark.anyio
async def test_a_stale_home_in_a_group_commit_fails_alone(store: SqlStore) -> None:
    mine, my_chat = await started(store)
    theirs, their_chat = await started(store)
    fence = await store.take_home(mine.id)
    stale = await store.take_home(theirs.id)
    await store.take_home(theirs.id)
    outcomes: list[object] = []

    async def commit(chat_id: str, fence_: Fence) -> None:
        try:
            await store.commit(Changes(events=[NewEvent(chat_id, say("x"))], fence=fence_))
            outcomes.append("stored")
        except Fenced:
            outcomes.append("fenced")

    async with anyio.create_task_group() as tg:
        await tg.start(store.run)
        async with anyio.create_task_group() as writers:
            for _ in range(10):
                writers.start_soon(commit, my_chat.id, Fence(mine.id, fence))
            writers.start_soon(commit, their_chat.id, Fence(theirs.id, stale))
        tg.cancel_scope.cancel()
    assert sorted(outcomes) == ["fenced"] + ["stored"] * 10
    assert await store.last_seq(my_chat.id) == 10
    assert await store.last_seq(their_chat.id) == 0


@asynccontextmanager
async def a_home_and_a_taker(
    postgres_reachable: bool,
) -> AsyncIterator[tuple[SqlStore, Engine, Conversation]]:
    """node-b's store, node-a's engine (its sessions named after it), and a conversation
    whose home node-a has just become, its heartbeat fresh."""
    with postgres_schema(postgres_reachable) as schema:
        options = {"options": f"-csearch_path={schema}"}
        home_engine = create_engine_for(
            POSTGRES_URL, connect_args=options, application_name="node-a/run1"
        )
        engine = create_engine_for(POSTGRES_URL, connect_args=options)
        try:
            create_schema(engine)
            store, home = SqlStore(engine), SqlStore(home_engine)
            conversation, _ = await started(store)
            await home.heartbeat("node-a/run1")
            assert await home.take_home(conversation.id, "node-a/run1", alive_within=10) == 1
            yield store, home_engine, conversation
        finally:
            home_engine.dispose()
            engine.dispose()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_home_frozen_mid_transaction_does_not_hold_its_conversation(
    postgres_reachable: bool,
) -> None:
    # node-a froze (SIGSTOP) with a transaction open on the conversation's row. Its
    # sessions carry its name; once its heartbeat lapses, node-b ends that transaction
    # instead of waiting on it; while node-a is alive, node-b gives up within a second.
    async with a_home_and_a_taker(postgres_reachable) as (store, frozen_engine, conversation):
        with frozen_engine.connect() as held:
            held.execute(
                text("SELECT id FROM conversations WHERE id = :id FOR UPDATE"),
                {"id": conversation.id},
            )
            # Alive: the lock is waited on for a bounded time, and then left alone.
            started_at = time.monotonic()
            with pytest.raises(Unavailable):
                await store.take_home(conversation.id, "node-b/run1", alive_within=10)
            assert time.monotonic() - started_at < 3
            assert held.execute(text("SELECT 1")).scalar_one() == 1
            # Dead (its heartbeat lapsed): its open transaction is ended at once.
            await anyio.sleep(0.05)
            with anyio.fail_after(3):
                assert await store.take_home(conversation.id, "node-b/run1", alive_within=0.01) == 2
            with pytest.raises(Exception, match="terminat"):
                held.execute(text("SELECT 1"))


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_home_frozen_with_a_statement_under_way_does_not_hold_its_conversation(
    postgres_reachable: bool,
) -> None:
    # A backend that is not idle — a statement still running, or an executemany's
    # pipeline sent but for its Sync — is 'active': PostgreSQL's idle timeout never
    # starts, and a home frozen then holds its row until it wakes.
    async with a_home_and_a_taker(postgres_reachable) as (store, frozen_engine, conversation):
        held = frozen_engine.raw_connection()
        driver = held.driver_connection
        assert driver is not None
        backend = driver.pgconn.backend_pid
        try:
            locking = (
                f"BEGIN; SELECT id FROM conversations WHERE id = '{conversation.id}' FOR UPDATE;"
                " SELECT pg_sleep(60)"
            )
            driver.pgconn.send_query(locking.encode())
            with store.engine.connect() as watcher:
                states = text("SELECT state FROM pg_stat_activity WHERE pid = :pid")

                def running() -> bool:
                    return watcher.execute(states, {"pid": backend}).scalar() == "active"

                with anyio.fail_after(3):
                    # Another process's state: nothing to wait on but the view.
                    while not running():  # noqa: ASYNC110
                        await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            with anyio.fail_after(3):
                assert await store.take_home(conversation.id, "node-b/run1", alive_within=0.01) == 2
        finally:
            with store.engine.connect() as cleaner:  # if the store left it running
                cleaner.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            held.invalidate()


@pytest.mark.anyio
async def test_ended_depth_one_tasks_without_a_follow_up_are_unsettled(store: SqlStore) -> None:
    expected = {}
    for state, depth, followed_up in [
        (TaskState.COMPLETED, 1, False),  # the roll-up window: found
        (TaskState.FAILED, 1, False),  # found
        (TaskState.COMPLETED, 1, True),  # announced
        (TaskState.INTERRUPTED, 1, False),  # told by the interruption notice
        (TaskState.WORKING, 1, False),  # still running: found, running
        (TaskState.COMPLETED, 2, False),  # its parent task reads it
    ]:
        conversation, _ = await started(store)
        task, chat = task_of(conversation, state=state)
        task = replace(task, depth=depth, parent_id=None, followed_up=followed_up)
        await store.commit(Changes(chats=[chat], tasks=[task]))
        if state is TaskState.WORKING:
            expected[conversation.id] = True
        elif depth == 1 and state in (TaskState.COMPLETED, TaskState.FAILED) and not followed_up:
            expected[conversation.id] = False
            found = task
    # A conversation with both is running.
    both, both_chat = task_of(await store.get_conversation(WS, found.conversation_id))
    await store.commit(Changes(chats=[both_chat], tasks=[replace(both, depth=1, parent_id=None)]))
    expected[found.conversation_id] = True

    unsettled = await store.unsettled()
    assert {u.conversation_id: u.running for u in unsettled} == expected
    assert {u.workspace_id for u in unsettled} == {WS}
    stored = await store.get_task(WS, found.id)
    assert stored is not None
    assert stored.followed_up is False


def _downgrade_to_1(engine: Engine) -> None:
    """Turn a fresh schema back into the first released one (schema 1)."""
    with begin_write(engine) as connection:
        connection.execute(text("ALTER TABLE conversations DROP COLUMN home_fence"))
        connection.execute(text("ALTER TABLE conversations DROP COLUMN home_owner"))
        connection.execute(text("DROP TABLE nodes"))
        connection.execute(text("ALTER TABLE tasks DROP COLUMN followed_up"))
        connection.execute(text("ALTER TABLE events DROP COLUMN wire"))
        connection.execute(SCHEMA_VERSIONS.delete())
        connection.execute(SCHEMA_VERSIONS.insert().values(version=1, applied_at=T0))
        # Schema 1 came before Alembic: it knew only its version number.
        connection.execute(text("DROP TABLE alembic_version"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_reachable: bool
) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_engine_for(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    with postgres_schema(postgres_reachable) as schema:
        engine = create_engine_for(
            POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}
        )
        yield engine
        engine.dispose()


SCHEMA_1_ROWS = (
    "INSERT INTO conversations (id, workspace_id, person_id, agent_id, chat_id, created_at)"
    " VALUES ('conv_1', 'ws_1', 'pat_1', 'front-desk', 'chat_1', '2026-11-25 10:00:00')",
    "INSERT INTO chats (id, workspace_id, conversation_id, kind, title, agent_id, agent_name,"
    " person_id, created_at) VALUES ('chat_1', 'ws_1', 'conv_1', 'conversation', 'Front desk',"
    " 'front-desk', 'Front desk', 'pat_1', '2026-11-25 10:00:00')",
    "INSERT INTO tasks (id, workspace_id, conversation_id, chat_id, title, agent_id, agent_name,"
    " state, depth, owner_agent_id, person_id, created_at, updated_at, subject, params)"
    " VALUES ('task_1', 'ws_1', 'conv_1', 'chat_1', 'Call Bob', 'caller', 'Caller',"
    " 'completed', 1, 'front-desk', 'pat_1', '2026-11-25 10:00:00', '2026-11-25 10:01:00',"
    " 'Bob', '{}')",
)


def test_the_first_released_schema_migrates_to_this_one_with_its_rows(
    empty_engine: Engine,
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from server.storage.engine import REVISIONS, _alembic
    from server.storage.tables import METADATA

    with begin_write(empty_engine) as connection:
        command.upgrade(_alembic(connection), REVISIONS[1])
        connection.execute(SCHEMA_VERSIONS.insert().values(version=1, applied_at=T0))
        for row in SCHEMA_1_ROWS:
            connection.execute(text(row))
    create_schema(empty_engine)
    create_schema(empty_engine)  # a restart: nothing to do
    assert schema_version(empty_engine) == SCHEMA_VERSION
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == REVISIONS[SCHEMA_VERSION]
        # The migrated schema is the one this code declares, column for column.
        assert compare_metadata(context, METADATA) == []
        fence, owner = connection.execute(
            text("SELECT home_fence, home_owner FROM conversations WHERE id = 'conv_1'")
        ).one()
        followed_up = connection.execute(
            text("SELECT followed_up FROM tasks WHERE id = 'task_1'")
        ).scalar()
    assert (fence, owner) == (0, None)
    assert bool(followed_up) is True


def test_a_schema_from_newer_code_is_refused(empty_engine: Engine) -> None:
    create_schema(empty_engine)
    with begin_write(empty_engine) as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaTooNew, match="0099"):
        create_schema(empty_engine)


@pytest.mark.anyio
async def test_schema_1_migrates_and_its_tasks_count_as_followed_up(store: SqlStore) -> None:
    conversation, _ = await started(store)
    task, task_chat = task_of(conversation, state=TaskState.COMPLETED)
    task = replace(task, depth=1, parent_id=None)
    await store.commit(Changes(chats=[task_chat], tasks=[task]))
    await anyio.to_thread.run_sync(_downgrade_to_1, store.engine)
    assert await anyio.to_thread.run_sync(schema_version, store.engine) == 1
    await store.create_schema()
    assert await anyio.to_thread.run_sync(schema_version, store.engine) == SCHEMA_VERSION
    migrated = await store.get_task(WS, task.id)
    assert migrated is not None
    assert migrated.followed_up is True  # sent long ago: never announced again
    assert await store.unsettled() == []
    assert await store.take_home(conversation.id) == 1


@pytest.mark.anyio
async def test_a_live_recorded_home_keeps_its_conversation(store: SqlStore) -> None:
    conversation, _ = await started(store)
    await store.heartbeat("node-a/run1")
    assert await store.take_home(conversation.id, "node-a/run1", alive_within=10) == 1
    # Another node may not take it while node-a's heartbeat is fresh...
    with pytest.raises(HomedElsewhere) as refused:
        await store.take_home(conversation.id, "node-b/run1", alive_within=10)
    assert refused.value.owner == "node-a/run1"
    # ...but node-a restarted (a new incarnation of the same node) may,
    assert await store.take_home(conversation.id, "node-a/run2", alive_within=10) == 2
    # and once that one has let go, anyone may.
    await store.heartbeat("node-a/run2")
    await store.release_home(conversation.id, "node-a/run2")
    assert await store.take_home(conversation.id, "node-b/run1", alive_within=10) == 3
    await store.forget_node("node-b/run1")
    assert await store.take_home(conversation.id, "node-c/run1", alive_within=10) == 4
    # A heartbeat older than alive_within counts as dead.
    await anyio.sleep(0.05)
    assert await store.take_home(conversation.id, "node-d/run1", alive_within=0.01) == 5

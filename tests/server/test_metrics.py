"""Metrics: the exposition text, task counts from the store, and a failing store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.models import (
    Author,
    Chat,
    ChatKind,
    Conversation,
    Task,
    TaskState,
    new_id,
    utcnow,
)
from agents.ports import Changes
from server.metrics import NodeMetrics, count_tasks_by_state, render_metrics
from server.storage import SqlStore, create_engine_for

WS = "ws_metrics"
AGENT = Author("agent_outreach", "Outreach")
STATISTICS = {
    "open_sockets": 2,
    "live_conversations": 1,
    "live_tasks": 3,
    "events_published": 41,
    "audit_written": 17,
    "audit_failed": 1,
    "http_waiting": 5,
    "http_dropped_head_timeout": 7,
    "http_dropped_evicted": 3,
    "hello_waiting": 2,
    "hello_dropped_evicted": 4,
}
# name, optional {labels}, value: the shape of every sample line.
SAMPLE = re.compile(r'[a-z_]+(\{[a-z_]+="[a-z_]+"(,[a-z_]+="[a-z_]+")*\})? -?[0-9]+\.[0-9]+')


def samples(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        assert SAMPLE.fullmatch(line), line
        name, value = line.rsplit(" ", 1)
        found[name] = float(value)
    return found


def figures(text: bytes) -> dict[str, float]:
    """The samples of the node's own counts (not its histograms, not the process's)."""
    lines = text.decode().splitlines()
    ours = [
        line
        for line in lines
        if line.startswith("switchboard_") and "_seconds" not in line.split(" ")[0]
    ]
    return samples("\n".join(ours))


def test_every_figure_is_a_sample_with_help_and_type() -> None:
    text = render_metrics(STATISTICS, {"working": 2, "completed": 5})
    assert text.endswith("\n")
    values = samples(text)
    assert values["switchboard_open_sockets"] == 2
    assert values["switchboard_live_conversations"] == 1
    assert values["switchboard_events_stored_total"] == 41
    assert values["switchboard_audit_events_written_total"] == 17
    assert values["switchboard_audit_write_failures_total"] == 1
    assert values['switchboard_tasks{state="working"}'] == 2
    assert values['switchboard_tasks{state="completed"}'] == 5
    # Every state has a series, so none appears or vanishes between scrapes.
    assert values['switchboard_tasks{state="interrupted"}'] == 0
    assert values["switchboard_store_up"] == 1
    # Slow clients: by kind (a request waiting for its head, a socket for its hello).
    assert values['switchboard_slow_clients_waiting{kind="request"}'] == 5
    assert values['switchboard_slow_clients_waiting{kind="socket"}'] == 2
    dropped = "switchboard_slow_clients_dropped_total"
    assert values[f'{dropped}{{kind="request",reason="head_timeout"}}'] == 7
    assert values[f'{dropped}{{kind="request",reason="evicted"}}'] == 3
    assert values[f'{dropped}{{kind="request",reason="body_timeout"}}'] == 0
    assert values[f'{dropped}{{kind="socket",reason="evicted"}}'] == 4
    assert values[f'{dropped}{{kind="socket",reason="head_timeout"}}'] == 0
    # A socket has no body: no series that could never move.
    assert f'{dropped}{{kind="socket",reason="body_timeout"}}' not in values
    for name in ("switchboard_open_sockets", "switchboard_audit_events_written_total"):
        assert f"# HELP {name} " in text
    assert "# TYPE switchboard_events_stored_total counter" in text
    assert "# TYPE switchboard_tasks gauge" in text


def test_without_task_counts_the_store_is_reported_down() -> None:
    values = samples(render_metrics(STATISTICS, None))
    assert values["switchboard_store_up"] == 0
    assert not any(name.startswith("switchboard_tasks") for name in values)
    assert values["switchboard_open_sockets"] == 2


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(create_engine_for(f"sqlite:///{tmp_path / 'metrics.db'}"))
    await store.create_schema()
    try:
        yield store
    finally:
        await store.close()


async def seed_tasks(store: SqlStore, states: list[TaskState]) -> None:
    now = utcnow()
    conversation = Conversation(
        new_id("conv"), WS, "person_ada", "agent_primary", new_id("chat"), now
    )
    await store.create_conversation(
        conversation,
        Chat(
            conversation.chat_id,
            WS,
            conversation.id,
            ChatKind.CONVERSATION,
            "Front desk",
            Author("agent_primary", "Front desk"),
            "person_ada",
            now,
        ),
    )
    chats: list[Chat] = []
    tasks: list[Task] = []
    for state in states:
        task_id, chat_id = new_id("task"), new_id("chat")
        chats.append(
            Chat(
                chat_id, WS, conversation.id, ChatKind.TASK, "t", AGENT, "person_ada", now, task_id
            )
        )
        tasks.append(
            Task(
                id=task_id,
                workspace_id=WS,
                conversation_id=conversation.id,
                chat_id=chat_id,
                title="t",
                agent=AGENT,
                state=state,
                depth=1,
                parent_id=None,
                owner_agent_id="agent_primary",
                person_id="person_ada",
                created_at=now,
                updated_at=now,
            )
        )
    await store.commit(Changes(chats=chats, tasks=tasks))


@pytest.mark.anyio
async def test_tasks_are_counted_by_state_in_the_store(store: SqlStore) -> None:
    await seed_tasks(store, [TaskState.WORKING, TaskState.WORKING, TaskState.FAILED])
    assert count_tasks_by_state(store.engine) == {"working": 2, "failed": 1}


@pytest.mark.anyio
async def test_a_node_renders_with_its_statistics_and_stored_tasks(store: SqlStore) -> None:
    await seed_tasks(store, [TaskState.CANCELLED])
    values = figures(await NodeMetrics(lambda: STATISTICS, store.engine).render())
    assert values['switchboard_tasks{state="cancelled"}'] == 1
    assert values['switchboard_tasks{state="working"}'] == 0
    assert values["switchboard_audit_events_written_total"] == 17


@pytest.mark.anyio
async def test_a_failing_store_drops_only_the_task_gauge() -> None:
    class Broken:
        def connect(self) -> Any:
            raise RuntimeError("database gone")

    values = figures(await NodeMetrics(lambda: STATISTICS, Broken()).render())  # type: ignore[arg-type]
    assert values["switchboard_store_up"] == 0
    assert values["switchboard_live_conversations"] == 1


@pytest.mark.anyio
async def test_a_nodes_histograms_and_process_figures(store: SqlStore) -> None:
    metrics = NodeMetrics(lambda: STATISTICS, store.engine)
    metrics.turn_answered(0.2)
    metrics.task_ended("outreach-caller", "completed", 4.0)
    metrics.task_ended("outreach-caller", "completed", 40.0)
    metrics.say_ack.observe(0.003)
    text = (await metrics.render()).decode()
    lines = text.splitlines()
    assert "# TYPE switchboard_turn_seconds histogram" in lines
    assert 'switchboard_turn_seconds_bucket{le="0.25"} 1.0' in lines
    assert "switchboard_turn_seconds_count 1.0" in lines
    calls = 'switchboard_task_seconds_bucket{agent="outreach-caller",le="5.0",state="completed"}'
    assert f"{calls} 1.0" in lines
    assert 'switchboard_task_seconds_count{agent="outreach-caller",state="completed"} 2.0' in lines
    assert "switchboard_say_ack_seconds_count 1.0" in lines
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)
    assert "switchboard_open_sockets 2.0" in lines
    assert "switchboard_store_up 1.0" in lines

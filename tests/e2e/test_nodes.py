"""Several real nodes on one PostgreSQL and one Redis, driven like users drive them.

Each test starts its own ``redis-server`` and its own database (:mod:`.cluster`).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from .cluster import cluster, postgres_database, redis_process
from .conftest import (
    conversation_ws,
    fetch_events,
    fetch_task,
    open_wire,
    start_conversation,
    token,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.postgres]

__all__ = ["cluster", "postgres_database", "redis_process"]

OUTREACH = "Reach every patient who hasn't completed onboarding"


async def test_a_starting_node_never_touches_a_live_nodes_work(cluster: Any) -> None:
    # Calls take ~3 s: node c starts while a's three calls run.
    (a,) = cluster(1, SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(a, tok)
    async with open_wire(conversation_ws(a, conv["conversation_id"]), tok) as wire:
        asked = await wire.say(OUTREACH)
        await wire.message(since=asked, role="agent", kind="reply")
        ids = wire.task_ids()
        assert len(ids) == 3
        await wire.wait(
            lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
        )
        (c,) = cluster(1)
        await anyio.sleep(2.5)  # past two lease periods: c's start-up and its sweeps ran
        for task_id in ids:
            assert (await fetch_task(c, tok, task_id))["state"] in ("working", "completed")
        await wire.message(kind="followup", within=30)
        for task_id in ids:
            views = wire.views(task_id)
            assert [v["state"] for v in views if v["state"] in TERMINAL] == ["completed"]
        assert wire.messages(kind="notice") == []
    for task_id in ids:
        assert (await fetch_task(c, tok, task_id))["state"] == "completed"


TERMINAL = {"completed", "failed", "cancelled", "interrupted"}


async def test_kill_9_of_a_home_another_node_settles_its_work_once(cluster: Any) -> None:
    a, b = cluster(2, SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(a, tok)
    events_path = f"/v1/conversations/{conv['conversation_id']}/events"
    async with open_wire(conversation_ws(a, conv["conversation_id"]), tok) as wire:
        asked = await wire.say(OUTREACH)
        await wire.message(since=asked, role="agent", kind="reply")
        ids = wire.task_ids()
        await wire.wait(
            lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
        )
        a.kill()
    # Nobody needs the conversation: b's sweep takes it once a's lease has lapsed.
    with anyio.fail_after(10):
        while (await fetch_task(b, tok, ids[0]))["state"] != "interrupted":  # noqa: ASYNC110
            await anyio.sleep(0.1)
    await anyio.sleep(1.5)
    events = await fetch_events(b, tok, events_path)
    ended = [
        e["task"]["state"] for e in events if e["type"] == "task" and e["task"]["state"] in TERMINAL
    ]
    assert ended == ["interrupted"] * 3
    notices = [e for e in events if e["type"] == "message" and e["kind"] == "notice"]
    assert len(notices) == 1
    assert "interrupted 3 background tasks" in notices[0]["text"]
    # b is the home now: the conversation goes on there.
    async with open_wire(
        conversation_ws(b, conv["conversation_id"]), tok, resume_after=wire.last_seq
    ) as back:
        await back.message(kind="notice")
        hours = await back.say("What are your opening hours?")
        await back.message(since=hours, role="agent", kind="reply")

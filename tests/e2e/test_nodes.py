"""Several real nodes on one PostgreSQL and one Redis, driven like users drive them.

Each test starts its own ``redis-server`` and its own database (:mod:`.cluster`).
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from .cluster import cluster, postgres_database, redis_process
from .conftest import (
    chat_ws,
    conversation_ws,
    fetch_events,
    fetch_task,
    headers,
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


def homes_of(database_url: str, task_ids: list[str]) -> set[str]:
    """The node ids that started these tasks (the conversation's home then)."""
    import psycopg

    plain = database_url.replace("+psycopg", "")
    with psycopg.connect(plain) as conn:
        rows = conn.execute("SELECT node_id FROM tasks WHERE id = ANY(%s)", (task_ids,)).fetchall()
    return {str(row[0]) for row in rows}


async def test_a_socket_on_any_node_works_like_one_on_the_home(
    cluster: Any, postgres_database: str
) -> None:
    a, b, c = cluster(3, SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(c, tok)
    url_a = conversation_ws(a, conv["conversation_id"])
    url_b = conversation_ws(b, conv["conversation_id"])
    async with open_wire(url_a, tok, chat_id=conv["chat_id"]) as first:
        hours = await first.say("What are your opening hours?")
        await first.message(since=hours, role="agent", kind="reply")
        # A second connection on another node replaces the first (4409)...
        async with open_wire(
            url_b, tok, resume_after=first.last_seq, chat_id=conv["chat_id"]
        ) as wire:
            assert await first.closed() == 4409
            # ...and works exactly like one on the home, which is still a.
            asked = await wire.say(OUTREACH)
            await wire.message(since=asked, role="agent", kind="reply")
            ids = wire.task_ids()
            assert len(ids) == 3
            assert homes_of(postgres_database, ids) == {"node-0"}
            await wire.wait(
                lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
            )
            status = await wire.request({"type": "task.status", "task_id": ids[0]})
            assert status["type"] == "result"
            assert status["task"]["state"] == "working"
            told = await wire.request(
                {"type": "task.instruct", "task_id": ids[1], "text": "Mention the new hours"}
            )
            assert told["type"] == "ack", told
            # HTTP on a third node goes through the same door.
            async with httpx.AsyncClient(base_url=c.http, timeout=10) as client:
                sent = await client.post(
                    f"/v1/tasks/{ids[2]}/messages",
                    json={"text": "Mention the new hours too"},
                    headers=headers(tok),
                )
            assert sent.status_code == 202, sent.text
            chat = wire.views(ids[2])[0]["chat_id"]
            history = await fetch_events(a, tok, f"/v1/chats/{chat}/events")
            assert [e["seq"] for e in history if e.get("text") == "Mention the new hours too"] == [
                sent.json()["seq"]
            ]
            cancel = await wire.request({"type": "task.cancel", "task_id": ids[0]})
            assert cancel["task"]["state"] == "cancelling", cancel
            await wire.task_state(ids[0], "cancelled")
            again = await wire.request({"type": "task.cancel", "task_id": ids[0]})
            assert again["task"]["state"] == "cancelled"
            late = await wire.request({"type": "task.instruct", "task_id": ids[0], "text": "x"})
            assert late["type"] == "error"
            assert late["code"] == "conflict"
            await wire.message(kind="followup", within=30)
            for task_id in ids[1:]:
                ended = [v["state"] for v in wire.views(task_id) if v["state"] in TERMINAL]
                assert ended == ["completed"]
            final = await wire.request({"type": "task.status", "task_id": ids[1]})
            assert final["task"]["state"] == "completed"
            assert wire.messages(kind="notice") == []
    # Each node counts what it relayed and what it served.
    assert (await metric(b, "switchboard_relayed_total")) >= 3  # say, instruct, cancel
    assert (await metric(a, "switchboard_relay_served_total")) >= 3
    assert (await metric(a, "switchboard_redis_connected")) == 1


async def metric(node: Any, name: str) -> float:
    import httpx

    async with httpx.AsyncClient(base_url=node.http, timeout=10) as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


async def test_kill_9_of_the_home_with_a_socket_elsewhere_takes_over_at_once(
    cluster: Any,
) -> None:
    import time

    a, b = cluster(2, SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(a, tok)
    async with open_wire(conversation_ws(a, conv["conversation_id"]), tok) as home:
        asked = await home.say(OUTREACH)
        await home.message(since=asked, role="agent", kind="reply")
        ids = home.task_ids()
        async with open_wire(
            conversation_ws(b, conv["conversation_id"]), tok, resume_after=home.last_seq
        ) as wire:
            assert await home.closed() == 4409
            await wire.wait(
                lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
            )
            killed = time.monotonic()
            a.kill()
            notice = await wire.message(kind="notice", within=10)
            noticed = time.monotonic() - killed
            assert "interrupted 3 background tasks" in notice["text"]
            for task_id in ids:
                await wire.task_state(task_id, "interrupted")
            hours = await wire.say("What are your opening hours?")
            await wire.message(since=hours, role="agent", kind="reply")
            answered = time.monotonic() - killed
            # The lease is 1 s here: the notice within a lease period and a little.
            assert noticed < 3.0, noticed
            print(f"\nfailover: notice after {noticed:.2f} s, answered after {answered:.2f} s")
            await anyio.sleep(1.0)
            assert len(wire.messages(kind="notice")) == 1
            for task_id in ids:
                ended = [v["state"] for v in wire.views(task_id) if v["state"] in TERMINAL]
                assert ended == ["interrupted"]


async def test_a_rolling_restart_interrupts_only_what_ran_on_the_stopped_node(
    cluster: Any,
) -> None:
    import time

    nodes = cluster(3, SWITCHBOARD_TOOL_LATENCY_SCALE="2")
    tok = token()
    convs = [await start_conversation(node, tok) for node in nodes]
    async with (
        open_wire(conversation_ws(nodes[0], convs[0]["conversation_id"]), tok) as w0,
        open_wire(conversation_ws(nodes[1], convs[1]["conversation_id"]), tok) as w1,
        open_wire(conversation_ws(nodes[2], convs[2]["conversation_id"]), tok, check=False) as w2,
    ):
        wires = [w0, w1, w2]
        for wire in wires:
            asked = await wire.say(OUTREACH)
            await wire.message(since=asked, role="agent", kind="reply")
        ids = [wire.task_ids() for wire in wires]
        for wire, mine in zip(wires, ids, strict=True):
            await wire.wait(
                lambda w, mine=mine: all(
                    v["state"] == "working" for i in mine for v in w.views(i)[-1:]
                )
            )
        # A deploy stops node 2 (SIGTERM): its own work ends interrupted, after clean-up.
        stopping = time.monotonic()
        nodes[2].stop()
        assert await w2.closed() == 1001
        # Its conversation moves at once (its lease was released): any node takes it.
        async with open_wire(
            conversation_ws(nodes[0], convs[2]["conversation_id"]), tok, resume_after=w2.last_seq
        ) as moved:
            notice = await moved.message(kind="notice")
            assert "interrupted 3 background tasks" in notice["text"]
            hours = await moved.say("What are your opening hours?")
            await moved.message(since=hours, role="agent", kind="reply")
            assert time.monotonic() - stopping < 15
        nodes[2].start()
        # The work on nodes 0 and 1 never noticed.
        for wire, mine in ((w0, ids[0]), (w1, ids[1])):
            await wire.message(kind="followup", within=40)
            for task_id in mine:
                ended = [v["state"] for v in wire.views(task_id) if v["state"] in TERMINAL]
                assert ended == ["completed"], ended
            assert wire.messages(kind="notice") == []
    # Then the other two restart in turn; every conversation is still served.
    for node in nodes[:2]:
        node.stop()
        node.start()
    for node, conv in zip(nodes, convs, strict=True):
        async with open_wire(conversation_ws(node, conv["conversation_id"]), tok) as again:
            hours = await again.say("What are your opening hours?")
            await again.message(since=hours, role="agent", kind="reply")
            notices = again.messages(kind="notice")
            assert len(notices) == (1 if conv is convs[2] else 0)


async def test_a_paused_home_is_fenced_out_when_it_wakes(cluster: Any) -> None:
    import signal

    a, b = cluster(2, SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(a, tok)
    async with open_wire(conversation_ws(a, conv["conversation_id"]), tok) as home:
        asked = await home.say(OUTREACH)
        await home.message(since=asked, role="agent", kind="reply")
        ids = home.task_ids()
        async with open_wire(
            conversation_ws(b, conv["conversation_id"]), tok, resume_after=home.last_seq
        ) as wire:
            assert await home.closed() == 4409
            await wire.wait(
                lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
            )
            assert a.process is not None
            a.process.send_signal(signal.SIGSTOP)  # a long pause: its lease and heartbeat lapse
            try:
                # Within a lease, or — if it froze mid-transaction, holding row locks —
                # once PostgreSQL has ended that idle transaction (5 s); more on a
                # loaded machine.
                notice = await wire.message(kind="notice", within=25)
                assert "interrupted 3 background tasks" in notice["text"]
            finally:
                a.process.send_signal(signal.SIGCONT)
            # a wakes with its calls finishing: every commit of its stale copy is refused.
            await anyio.sleep(4)
            hours = await wire.say("What are your opening hours?")
            await wire.message(since=hours, role="agent", kind="reply")
            for task_id in ids:
                ended = [v["state"] for v in wire.views(task_id) if v["state"] in TERMINAL]
                assert ended == ["interrupted"], ended
                assert (await fetch_task(b, tok, task_id))["state"] == "interrupted"
            assert wire.messages(kind="followup") == []
            assert len(wire.messages(kind="notice")) == 1
    assert "conversation taken over" in a.logs()


async def test_a_sub_agents_chat_watched_on_another_node_is_live_and_commands_work(
    cluster: Any,
) -> None:
    a, b = cluster(2, SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(a, tok)
    async with open_wire(conversation_ws(a, conv["conversation_id"]), tok) as home:
        asked = await home.say(OUTREACH)
        await home.message(since=asked, role="agent", kind="reply")
        task_id = home.task_ids()[0]
        chat_id = home.views(task_id)[0]["chat_id"]
        async with open_wire(chat_ws(b, chat_id), tok, chat_id=chat_id) as tab:
            await tab.task_state(task_id, "working")
            said = await tab.request({"type": "say", "text": "Ask about Tuesday"})
            assert said["type"] == "ack", said
            await tab.message(text="Ask about Tuesday")
            cancel = await tab.request({"type": "task.cancel"})
            assert cancel["task"]["state"] == "cancelling", cancel
            await tab.task_state(task_id, "cancelled")
        await home.task_state(task_id, "cancelled")

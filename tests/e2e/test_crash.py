"""kill -9 while background work runs, then a restart on the same database.

What was stored survives unchanged, the tasks that were running end ``interrupted``,
and the person is told so in their conversation.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import (
    chat_ws,
    conversation_ws,
    fetch_events,
    fetch_task,
    open_wire,
    start_conversation,
    token,
)
from .protocol_check import check_error, check_result_task, check_stream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

OUTREACH = "Reach every patient who hasn't completed onboarding"


async def test_kill_9_then_restart_interrupts_and_loses_nothing(server_factory: Any) -> None:
    # Calls take 3 s: they are still running when the process dies.
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(server, tok)
    events_path = f"/v1/conversations/{conv['conversation_id']}/events"
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as wire:
        asked = await wire.say(OUTREACH)
        await wire.message(since=asked, role="agent", kind="reply")
        ids = wire.task_ids()
        assert len(ids) == 3
        await wire.wait(
            lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
        )
        await wire.wait(lambda w: all(v["progress"] for i in ids for v in w.views(i)[-1:]))
        before = await fetch_events(server, tok, events_path)
        chats = {i: wire.views(i)[0]["chat_id"] for i in ids}
        chats_before = {
            i: await fetch_events(server, tok, f"/v1/chats/{c}/events") for i, c in chats.items()
        }
        server.kill()
    seen = wire.events()

    server.start()
    after = await fetch_events(server, tok, events_path)
    # Nothing stored before the kill is lost or changed, and every event the person saw
    # had been stored before it was sent.
    assert after[: len(before)] == before
    assert after[: len(seen)] == seen

    for task_id in ids:
        stored = await fetch_task(server, tok, task_id)
        assert stored["state"] == "interrupted", stored
    news = after[len(before) :]
    ended = {e["task"]["id"]: e["task"]["state"] for e in news if e["type"] == "task"}
    assert ended == dict.fromkeys(ids, "interrupted")
    notices = [e for e in news if e["type"] == "message" and e["kind"] == "notice"]
    assert len(notices) == 1, news
    assert "restart" in notices[0]["text"].lower()
    assert "3" in notices[0]["text"] or "three" in notices[0]["text"].lower()

    histories = []
    for task_id, chat_id in chats.items():
        history = await fetch_events(server, tok, f"/v1/chats/{chat_id}/events")
        assert history[: len(chats_before[task_id])] == chats_before[task_id]
        assert history[-1]["type"] == "task"
        assert history[-1]["task"]["state"] == "interrupted"
        histories.append((chat_id, history))

    # The person, reconnecting where the socket was cut, hears about it, and the
    # conversation goes on.
    async with open_wire(url, tok, resume_after=wire.last_seq, chat_id=conv["chat_id"]) as back:
        notice = await back.message(kind="notice")
        assert notice == notices[0]
        hours = await back.say("What are your opening hours?")
        await back.message(since=hours, role="agent", kind="reply")
        # An interrupted task stays interrupted: no follow-up pretends it finished.
        assert not back.messages(kind="followup")
        # It cannot be told anything new, and cancelling it changes nothing.
        late = await back.request({"type": "task.instruct", "task_id": ids[0], "text": "retry"})
        check_error(late, "conflict", id=late["id"])
        cancel = await back.request({"type": "task.cancel", "task_id": ids[0]})
        assert check_result_task(cancel, id=cancel["id"])["state"] == "interrupted"
    # A sub-agent's chat can still be watched after the restart.
    some_chat = chats[ids[0]]
    async with open_wire(chat_ws(server, some_chat), tok, chat_id=some_chat) as tab:
        await tab.task_state(ids[0], "interrupted")

    # Last, the contract on every event stored across the crash.
    check_stream(after, chat_id=conv["chat_id"])
    for chat_id, history in histories:
        check_stream(history, chat_id=chat_id)


async def test_a_kill_between_the_last_task_and_its_roll_up_loses_no_roll_up(
    server_factory: Any,
) -> None:
    import sqlite3

    server = server_factory()
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as wire:
        asked = await wire.say(OUTREACH)
        rollup = await wire.message(since=asked, kind="followup", within=30)
        ids = wire.task_ids()
    server.kill()
    # Put the database back where a kill -9 in the roll-up window leaves it: every task
    # stored `completed`, the roll-up never stored.
    database = server.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        (last,) = db.execute(
            "SELECT last_seq FROM chat_heads WHERE chat_id = ?", (conv["chat_id"],)
        ).fetchone()
        assert last == rollup["seq"], "the roll-up is the conversation's last event"
        db.execute("DELETE FROM events WHERE chat_id = ? AND seq = ?", (conv["chat_id"], last))
        db.execute(
            "UPDATE chat_heads SET last_seq = ? WHERE chat_id = ?", (last - 1, conv["chat_id"])
        )
        changed = db.execute("UPDATE tasks SET followed_up = 0 WHERE depth = 1").rowcount
        assert changed == len(ids) == 3
    db.close()

    server.start()
    async with open_wire(url, tok, resume_after=rollup["seq"] - 1, chat_id=conv["chat_id"]) as back:
        again = await back.message(kind="followup", within=15)
        assert again["seq"] == rollup["seq"]
        # Worded from the stored results (what the sub-agents kept in memory died with
        # the process), it still tells of every call.
        for name in ("Alice", "Bob", "Carol"):
            assert name in again["text"], again["text"]
        assert again.get("task_id") is None  # one roll-up of all three
    # Told once: a second restart finds nothing left to announce.
    server.stop()
    server.start()
    events = await fetch_events(server, tok, f"/v1/conversations/{conv['conversation_id']}/events")
    assert [e for e in events if e["type"] == "message" and e["kind"] == "followup"] == [again]
    assert not [e for e in events if e["type"] == "message" and e["kind"] == "notice"]

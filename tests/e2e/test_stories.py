"""The seed's three stories, over a real socket, every stream event held to PROTOCOL.md.

(a) outreach to everyone who has not finished onboarding, three calls in parallel and
one roll-up; (b) a prior authorization in the background, live status, a follow-up,
and a cancellation by word and by frame; (c) five records looked up in parallel and
cross-referenced.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import (
    ServerProcess,
    chat_ws,
    conversation_ws,
    fetch_events,
    fetch_task,
    headers,
    open_wire,
    start_conversation,
    token,
)
from .protocol_check import (
    TERMINAL_STATES,
    check_error,
    check_result_task,
    check_result_tasks,
    check_stream,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

# Tasks must still be running while the person talks: calls take 1.5 s at this scale.
RUNNING_SCALE = "0.5"

OUTREACH = "Reach every patient who hasn't completed onboarding"
ROLLUP = (
    "Agent 1 called Alice — she's getting back to us today. "
    "Agent 2 left a voicemail for Bob. "
    "Agent 3 learned that Carol has moved and no longer needs services."
)
HOURS = "What are your opening hours?"
PRIOR_AUTH = "Start a prior authorization for Ozempic for Dana"
STILL_WAITING = "Still waiting on Bluebridge Health — a decision is expected within a minute."
APPROVED = "Quick update on the prior auth you asked about earlier — approved."
RECORDS = "Look up five patients' records and cross-reference them"


def opening_hours(text: str) -> bool:
    return "Monday to Friday" in text


async def chat_history(server: ServerProcess, tok: str, chat_id: str) -> list[dict[str, Any]]:
    """A chat's stored events, checked against the contract."""
    events = await fetch_events(server, tok, f"/v1/chats/{chat_id}/events")
    check_stream(events, chat_id=chat_id)
    return events


async def outreach_story(server: ServerProcess) -> None:
    """Story (a): three calls in parallel, a chat meanwhile, one roll-up naming all three."""
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as wire:
        assert wire.welcome["conversation_id"] == conv["conversation_id"]
        assert wire.welcome["last_seq"] == 0
        asked = await wire.say(OUTREACH)
        announce = await wire.message(since=asked, role="agent", kind="reply")
        assert "Alice, Bob and Carol" in announce["text"]
        assert "background" in announce["text"]
        assert announce["author"]["id"] == "front-desk"

        ids = wire.task_ids()
        assert len(ids) == 3, wire.views()
        first = {wire.views(i)[0]["title"]: wire.views(i)[0] for i in ids}
        assert set(first) == {"Call Alice M.", "Call Bob T.", "Call Carol S."}
        for view in first.values():
            assert view["state"] == "submitted"
            assert view["depth"] == 1
            assert view["parent_id"] is None
            assert view["agent"]["id"] == "outreach-caller"
            assert view["conversation_id"] == conv["conversation_id"]
            assert view["chat_id"] != conv["chat_id"]
        assert len({v["chat_id"] for v in first.values()}) == 3, "each sub-agent has its own chat"

        # In parallel: all three are working at once, none has finished yet.
        await wire.wait(
            lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
        )
        assert not [v for v in wire.views() if v["state"] in TERMINAL_STATES]

        # The person keeps talking and is answered before the calls are done.
        hours_asked = await wire.say(HOURS)
        hours = await wire.message(since=hours_asked, role="agent", kind="reply")
        assert opening_hours(hours["text"]), hours

        rollup = await wire.message(kind="followup", within=30)
        assert rollup["text"] == ROLLUP
        assert rollup["role"] == "agent"
        assert rollup["author"]["id"] == "front-desk"
        assert hours["seq"] < rollup["seq"], "the reply came only after the roll-up"
        finals = {wire.views(i)[-1]["title"]: wire.views(i)[-1] for i in ids}
        assert {t: v["state"] for t, v in finals.items()} == dict.fromkeys(finals, "completed")
        assert "Alice" in finals["Call Alice M."]["result"]
        assert "voicemail" in finals["Call Bob T."]["result"]
        assert "moved" in finals["Call Carol S."]["result"]
        # The latest progress of each call is never lost, even when it came just before
        # the end.
        assert finals["Call Alice M."]["progress"] == "Connected with Alice."
        assert finals["Call Bob T."]["progress"] == "No answer — leaving a voicemail for Bob."
        assert finals["Call Carol S."]["progress"] == "Connected with Carol."

        # One roll-up, not one follow-up per call.
        thanks = await wire.say("Thanks!")
        await wire.message(since=thanks, role="agent", kind="reply")
        assert [m["text"] for m in wire.messages(kind="followup")] == [ROLLUP]

    # What the person saw is exactly what was stored.
    stored = await fetch_events(server, tok, f"/v1/conversations/{conv['conversation_id']}/events")
    check_stream(stored, chat_id=conv["chat_id"])
    assert stored == wire.events()
    # Page by page, the same.
    paged = await fetch_events(
        server, tok, f"/v1/conversations/{conv['conversation_id']}/events", limit=4
    )
    assert paged == stored

    # Each sub-agent's chat: its assignment, its work, its end.
    for title, view in finals.items():
        history = await chat_history(server, tok, view["chat_id"])
        opening = next(e for e in history if e["type"] == "message")
        assert opening["role"] == "user"
        assert title.removeprefix("Call ").split()[0] in opening["text"], opening
        said = [e for e in history if e["type"] == "message" and e["role"] == "agent"]
        assert any(view["result"] in e["text"] for e in said), said
        assert history[-1]["type"] == "task"
        assert history[-1]["task"]["state"] == "completed"


async def test_outreach_fans_out_and_rolls_up(shared_servers: Any) -> None:
    await outreach_story(shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE))


@pytest.mark.postgres
async def test_outreach_story_on_postgresql(postgres_schema_url: str, server_factory: Any) -> None:
    server = server_factory(postgres_schema_url, SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    await outreach_story(server)


async def test_prior_auth_in_the_background(shared_servers: Any) -> None:
    """Story (b): progress, a question answered meanwhile, live status, the follow-up."""
    # The payer decides after 6 s: long enough to talk while it is pending.
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(server, tok)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        asked = await wire.say(PRIOR_AUTH)
        started = await wire.message(since=asked, role="agent", kind="reply")
        assert "background" in started["text"]
        (task_id,) = wire.task_ids()
        assert started.get("task_id") == task_id
        view = wire.views(task_id)[0]
        assert view["title"] == "Prior auth: Ozempic for Dana W."
        assert view["agent"]["id"] == "prior-auth"

        # Another question, answered while the request is with the payer.
        hours_asked = await wire.say(HOURS)
        hours = await wire.message(since=hours_asked, role="agent", kind="reply")
        assert opening_hours(hours["text"])

        waiting = await wire.message(kind="progress", text=STILL_WAITING, within=20)
        assert waiting["task_id"] == task_id
        assert waiting["role"] == "agent"

        # Live status on demand: what the task is doing right now.
        status_asked = await wire.say("What's happening with the Ozempic request?")
        status = await wire.message(since=status_asked, role="agent", kind="reply")
        followups = wire.messages(kind="followup")
        assert not followups, "the payer decided before the status question was answered"
        assert "ozempic" in status["text"].lower()
        assert "still waiting on Bluebridge Health" in status["text"]
        assert "a decision is expected" in status["text"]
        answer = await wire.request({"type": "task.status", "task_id": task_id})
        live = check_result_task(answer, id=answer["id"])
        assert live["state"] == "working"
        assert live["progress"] == STILL_WAITING

        # New instructions in plain words reach the sub-agent while it waits.
        add = await wire.say("For the Ozempic request, add that Dana tried metformin first")
        passed_on = await wire.message(since=add, role="agent", kind="reply")
        assert "passed that on" in passed_on["text"], passed_on

        followup = await wire.message(kind="followup", within=20)
        assert followup["text"].startswith(APPROVED), followup
        assert "metformin" in followup["text"], "the instruction did not reach the sub-agent"
        assert followup["task_id"] == task_id
        assert status["seq"] < followup["seq"]
        done = wire.views(task_id)[-1]
        assert done["state"] == "completed"
        assert done["result"].startswith("Approved")

    stored = await fetch_task(server, tok, task_id)
    assert stored["state"] == "completed"
    assert stored["result"] == done["result"]


async def test_cancel_by_word_withdraws_the_request(shared_servers: Any) -> None:
    """Story (b), second run: "cancel the background work on Ozempic" stops the sub-agent."""
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(server, tok)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        asked = await wire.say(PRIOR_AUTH)
        await wire.message(since=asked, role="agent", kind="reply")
        (task_id,) = wire.task_ids()
        task_chat = wire.views(task_id)[0]["chat_id"]
        # Following the sub-agent in its own tab, as the Chats view allows.
        async with open_wire(chat_ws(server, task_chat), tok, chat_id=task_chat) as tab:
            assert tab.welcome.get("chat_id") == task_chat
            await wire.message(kind="progress", task_id=task_id)
            stop = await wire.say("cancel the background work on Ozempic")
            answer = await wire.message(since=stop, role="agent", kind="reply")
            assert "stop" in answer["text"].lower(), answer
            cancelled = await wire.task_state(task_id, *TERMINAL_STATES)
            assert cancelled["state"] == "cancelled"
            states = [v["state"] for v in wire.views(task_id)]
            assert "cancelling" in states
            assert states.index("cancelling") < states.index("cancelled")
            assert "Withdrew" in cancelled["result"]
            # The withdrawal shows in the sub-agent's chat, before it ends cancelled.
            cleanup = await tab.message(kind="notice", text=lambda t: "Withdrew" in t)
            assert "Ozempic prior authorization" in cleanup["text"]
            assert cleanup["author"]["id"] == "prior-auth"
            end = await tab.task_state(task_id, *TERMINAL_STATES)
            assert end["state"] == "cancelled"
            assert [e for e in tab.events() if e["type"] == "task"][-1]["seq"] > cleanup["seq"]
        news = await wire.message(kind="followup", task_id=task_id)
        assert "stopped" in news["text"], news
        assert not [m for m in wire.messages(kind="followup") if "approved" in m["text"]]

    assert (await fetch_task(server, tok, task_id))["state"] == "cancelled"
    await chat_history(server, tok, task_chat)


async def test_task_frames(shared_servers: Any) -> None:
    """``task.list``, ``task.status``, ``task.instruct`` and ``task.cancel``: answers and events."""
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(server, tok)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        empty = await wire.request({"type": "task.list"})
        assert check_result_tasks(empty, id=empty["id"]) == []

        asked = await wire.say(PRIOR_AUTH)
        await wire.message(since=asked, role="agent", kind="reply")
        (task_id,) = wire.task_ids()
        await wire.task_state(task_id, "working")

        listed = await wire.request({"type": "task.list"})
        (only,) = check_result_tasks(listed, id=listed["id"])
        assert only["id"] == task_id
        assert only["title"] == "Prior auth: Ozempic for Dana W."
        assert only["state"] == "working"

        status = await wire.request({"type": "task.status", "task_id": task_id})
        view = check_result_task(status, id=status["id"])
        assert view["id"] == task_id
        assert view["conversation_id"] == conv["conversation_id"]

        task_chat = view["chat_id"]
        async with open_wire(chat_ws(server, task_chat), tok, chat_id=task_chat) as tab:
            instructed = await wire.request(
                {"type": "task.instruct", "task_id": task_id, "text": "Mark it urgent"}
            )
            assert instructed["type"] == "ack", instructed
            seq = instructed["seq"]
            assert type(seq) is int
            # The instruction is stored in the sub-agent's chat, at the ack's seq ...
            told = await tab.message(text="Mark it urgent")
            assert told["seq"] == seq
            assert told["task_id"] == task_id
            # ... and the sub-agent takes it at its next step.
            # (The sub-agent takes it at its next step, after the payer call: see story b.)

            cancel = await wire.request(
                {"type": "task.cancel", "task_id": task_id, "reason": "no longer needed"}
            )
            cancelling = check_result_task(cancel, id=cancel["id"])
            assert cancelling["id"] == task_id
            assert cancelling["state"] in ("cancelling", "cancelled")
            end = await wire.task_state(task_id, *TERMINAL_STATES)
            assert end["state"] == "cancelled"
            assert [v["state"] for v in wire.views(task_id)][-2:] == ["cancelling", "cancelled"]
            await tab.task_state(task_id, "cancelled")

        # Cancel is idempotent: the terminal task, unchanged.
        again = await wire.request({"type": "task.cancel", "task_id": task_id})
        assert check_result_task(again, id=again["id"])["state"] == "cancelled"
        # New instructions for a task that has ended: conflict.
        late = await wire.request({"type": "task.instruct", "task_id": task_id, "text": "hurry"})
        check_error(late, "conflict", id=late["id"])
        # A task that does not exist: not_found.
        nothing = await wire.request({"type": "task.status", "task_id": "task_doesnotexist"})
        check_error(nothing, "not_found", id=nothing["id"])
        pong = await wire.request({"type": "ping"})
        assert pong == {"type": "pong", "id": pong["id"]}
        # Still no terminal task changed afterwards (checked on exit), and the chat goes on.
        hours_asked = await wire.say(HOURS)
        await wire.message(since=hours_asked, role="agent", kind="reply")


async def test_five_records_cross_referenced(shared_servers: Any) -> None:
    """Story (c): five lookups in parallel sub-agents, one cross-referenced answer."""
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        asked = await wire.say(RECORDS)
        announce = await wire.message(since=asked, role="agent", kind="reply")
        assert "5 lookups in parallel" in announce["text"]
        summary = await wire.message(kind="followup", within=30)
        ids = wire.task_ids()
        assert len(ids) == 5
        firsts = [wire.views(i)[0] for i in ids]
        assert {v["title"] for v in firsts} == {
            "Records: Dana W.",
            "Records: Evan O.",
            "Records: Farah H.",
            "Records: Gus L.",
            "Records: Hana K.",
        }
        assert {v["agent"]["id"] for v in firsts} == {"records-clerk"}
        assert len({v["chat_id"] for v in firsts}) == 5
        # All five were started together, before any of them finished.
        events = wire.events()
        submitted = [
            e["seq"] for e in events if e["type"] == "task" and e["task"]["state"] == "submitted"
        ]
        ended = [
            e["seq"] for e in events if e["type"] == "task" and e["task"]["state"] == "completed"
        ]
        assert len(submitted) == 5
        assert len(ended) == 5
        assert max(submitted) < min(ended)
        assert max(ended) < summary["seq"]

        text = summary["text"]
        assert text.startswith(
            "I looked up and cross-referenced the records for Dana, Evan, Farah, Gus and Hana."
        )
        assert "metformin — Dana, Evan and Hana" in text
        assert "penicillin — Dana, Farah and Gus" in text
        assert "Gus takes warfarin with aspirin (higher bleeding risk)" in text
        assert "Farah takes lisinopril with spironolactone" in text
        assert len(wire.messages(kind="followup")) == 1

    for view in firsts:
        history = await chat_history(server, tok, view["chat_id"])
        assert history[-1]["task"]["state"] == "completed"
        name = view["title"].removeprefix("Records: ").split()[0]
        assert any(name in e.get("text", "") for e in history if e["type"] == "message")


async def test_sub_agent_chat_in_its_own_tab(shared_servers: Any) -> None:
    """The Chats view lists the sub-agent's chat; its tab follows it, instructs and cancels."""
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(server, tok)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        asked = await wire.say(PRIOR_AUTH)
        await wire.message(since=asked, role="agent", kind="reply")
        (task_id,) = wire.task_ids()
        task_chat = wire.views(task_id)[0]["chat_id"]

        async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
            listed = await client.get("/v1/chats", headers=headers(tok))
        assert listed.status_code == 200, listed.text
        chats = [
            c for c in listed.json()["chats"] if c["conversation_id"] == conv["conversation_id"]
        ]
        assert [c["id"] for c in chats] == [task_chat, conv["chat_id"]], "newest first"
        assert chats[0]["task_id"] == task_id
        assert chats[0]["title"] == "Prior auth: Ozempic for Dana W."

        async with open_wire(chat_ws(server, task_chat), tok, chat_id=task_chat) as tab:
            assert tab.welcome["chat_id"] == task_chat
            # The tab replays the chat from its start: the assignment comes first.
            assignment = await tab.message(role="user")
            assert "Ozempic" in assignment["text"]
            await tab.task_state(task_id, "working")
            # In the tab, what the person says goes to the sub-agent as instructions.
            told = await tab.say("Mark it urgent")
            assert tab.events()[-1]["seq"] >= told
            assert (await tab.message(text="Mark it urgent"))["task_id"] == task_id
            # And cancel needs no task id there: it is the tab's own task.
            cancel = await tab.request({"type": "task.cancel"})
            view = check_result_task(cancel, id=cancel["id"])
            assert view["id"] == task_id
            assert view["state"] in ("cancelling", "cancelled")
            await tab.task_state(task_id, "cancelled")
        assert (await wire.task_state(task_id, *TERMINAL_STATES))["state"] == "cancelled"
        news = await wire.message(kind="followup", task_id=task_id)
        assert "stopped" in news["text"]

"""Connections come and go; the conversation and its background work do not.

A dropped socket resumes with ``resume_after`` and loses nothing, follow-ups wait for
the next connection, a newer connection replaces an older one (4409), sockets without
a valid ``hello`` are closed (4401), and a shutdown says 1001 and leaves the running
tasks ``interrupted``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect

from agents.models import utcnow
from server.auth import issue_token
from server.settings import DEVELOPMENT_SECRET

from .conftest import (
    ServerProcess,
    Wire,
    conversation_ws,
    fetch_events,
    fetch_task,
    headers,
    open_wire,
    start_conversation,
    token,
)
from .protocol_check import check_stream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

OUTREACH = "Reach every patient who hasn't completed onboarding"


async def wait_stored(
    server: ServerProcess, tok: str, conversation_id: str, condition: Any, within: float = 30
) -> list[dict[str, Any]]:
    """Poll the stored events (no socket is open to tell us) until *condition* holds."""
    with anyio.fail_after(within):
        while True:
            events = await fetch_events(server, tok, f"/v1/conversations/{conversation_id}/events")
            if condition(events):
                return events
            await anyio.sleep(0.1)


async def start_fan_out(wire: Wire) -> list[str]:
    asked = await wire.say(OUTREACH)
    await wire.message(since=asked, role="agent", kind="reply")
    ids = wire.task_ids()
    assert len(ids) == 3
    return ids


async def test_resume_mid_fan_out_loses_and_repeats_nothing(shared_servers: Any) -> None:
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="0.5")
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as first:
        ids = await start_fan_out(first)
        await first.wait(
            lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
        )
    seen = first.last_seq
    # The calls go on while nobody listens.
    await wait_stored(server, tok, conv["conversation_id"], lambda es: es[-1]["seq"] > seen)

    async with open_wire(url, tok, resume_after=seen, chat_id=conv["chat_id"]) as second:
        assert second.welcome["last_seq"] > seen
        rollup = await second.message(kind="followup", within=30)
        assert "Agent 1 called Alice" in rollup["text"]
        replayed = second.events()
        assert replayed[0]["seq"] == seen + 1

    both = first.events() + second.events()
    seqs = [e["seq"] for e in both]
    assert len(seqs) == len(set(seqs)), "an event was delivered twice"
    check_stream(both, chat_id=conv["chat_id"])
    stored = await fetch_events(server, tok, f"/v1/conversations/{conv['conversation_id']}/events")
    assert both == stored[: len(both)]
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))


async def test_flapping_connection_sees_every_event_once(shared_servers: Any) -> None:
    """Reconnect again and again while the calls run: still each event exactly once."""
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="0.5")
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    wires: list[Wire] = []
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as wire:
        wires.append(wire)
        await start_fan_out(wire)
    seen = wire.last_seq
    while not any(w.messages(kind="followup") for w in wires):
        async with open_wire(url, tok, resume_after=seen, chat_id=conv["chat_id"]) as wire:
            wires.append(wire)
            # Leave as soon as something new came: mid-stream, every time.
            await wire.wait(lambda w, after=seen: w.last_seq > after, within=30)
        seen = wire.last_seq
    assert len(wires) > 3, "the calls ended before the connection could flap"
    everything = [e for w in wires for e in w.events()]
    check_stream(everything, chat_id=conv["chat_id"])
    stored = await fetch_events(server, tok, f"/v1/conversations/{conv['conversation_id']}/events")
    assert everything == stored[: len(everything)]


async def test_frames_before_hello_are_refused_and_not_stored(shared_servers: Any) -> None:
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with connect(url) as socket:
        wire = Wire(socket)
        early = await wire.request({"type": "say", "text": "Call Alice"})
        assert early["type"] == "error"
        assert early["code"] == "unauthorized"
        await socket.send(json.dumps({"type": "hello", "token": tok, "client": "widget"}))
        welcome = await wire.until(lambda f: f.get("type") == "welcome")
        assert welcome["last_seq"] == 0, "a frame sent before hello was stored"
        asked = await wire.say("What are your opening hours?")
        assert asked == 1
        await wire.message(since=asked, role="agent", kind="reply")
    check_stream(wire.frames, chat_id=conv["chat_id"])
    assert not wire.task_ids(), "a frame sent before hello started work"


async def test_followup_made_while_away_arrives_on_next_connection(shared_servers: Any) -> None:
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="0.5")
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as first:
        await start_fan_out(first)
    assert not first.messages(kind="followup")
    seen = first.last_seq

    stored = await wait_stored(
        server,
        tok,
        conv["conversation_id"],
        lambda es: any(e.get("kind") == "followup" for e in es),
    )
    (made,) = [e for e in stored if e.get("kind") == "followup"]
    assert made["seq"] > seen

    async with open_wire(url, tok, resume_after=seen, chat_id=conv["chat_id"]) as second:
        delivered = await second.message(kind="followup")
        assert delivered == made
        assert delivered["text"].startswith("Agent 1 called Alice")


async def test_newer_connection_replaces_older_with_4409(shared_servers: Any) -> None:
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as older:
        hello = await older.say("Hello")
        await older.message(since=hello, role="agent", kind="reply")
        async with open_wire(url, tok, chat_id=conv["chat_id"]) as newer:
            assert await older.closed() == 4409
            # The newer one has the whole conversation and carries on with it.
            await newer.wait(lambda w: w.last_seq >= older.last_seq)
            assert newer.events()[: len(older.events())] == older.events()
            again = await newer.say("What are your opening hours?")
            assert again == older.last_seq + 1
            await newer.message(since=again, role="agent", kind="reply")


async def test_no_hello_in_time_closes_4401(server_factory: Any) -> None:
    server = server_factory(SWITCHBOARD_HELLO_TIMEOUT_SECONDS="1")
    tok = token()
    conv = await start_conversation(server, tok)
    async with connect(conversation_ws(server, conv["conversation_id"])) as socket:
        wire = Wire(socket)
        started = anyio.current_time()
        assert await wire.closed(within=10) == 4401
        assert anyio.current_time() - started >= 0.8, "closed before the hello timeout"
        assert wire.frames == [], "something was sent before hello"


@pytest.mark.parametrize(
    "bad_token",
    [
        pytest.param(
            issue_token(
                "another-secret-that-is-long-enough-0123",
                workspace="demo",
                sub="pat",
                role="person",
            ),
            id="wrong-secret",
        ),
        pytest.param(
            issue_token(
                DEVELOPMENT_SECRET,
                workspace="demo",
                sub="pat",
                role="person",
                ttl=60,
                now=utcnow() - timedelta(hours=2),
            ),
            id="expired",
        ),
        pytest.param("not-a-token", id="garbage"),
    ],
)
async def test_bad_token_closes_4401(shared_servers: Any, bad_token: str) -> None:
    server = shared_servers()
    conv = await start_conversation(server, token())
    async with connect(conversation_ws(server, conv["conversation_id"])) as socket:
        wire = Wire(socket)
        await socket.send(json.dumps({"type": "hello", "token": bad_token, "client": "widget"}))
        assert await wire.closed() == 4401
        assert not [f for f in wire.frames if f.get("type") == "welcome"]


async def test_token_in_upgrade_header(shared_servers: Any) -> None:
    """A non-browser client may send its token on the upgrade instead of in ``hello``."""
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with connect(url, additional_headers=headers(tok)) as socket:
        wire = Wire(socket)
        await socket.send(json.dumps({"type": "hello", "client": "voice"}))
        welcome = await wire.recv()
        assert welcome["type"] == "welcome"
        assert welcome["conversation_id"] == conv["conversation_id"]
        asked = await wire.say("What are your opening hours?")
        reply = await wire.message(since=asked, role="agent", kind="reply")
        assert reply.get("speak") is True
    check_stream(wire.frames, chat_id=conv["chat_id"], voice=True)


async def test_shutdown_closes_1001_and_interrupts_running_tasks(server_factory: Any) -> None:
    # Calls take 3 s: still running when the server is asked to stop.
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as wire:
        ids = await start_fan_out(wire)
        await wire.wait(
            lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, server.stop)
            assert await wire.closed(within=20) == 1001
    assert server.process is None

    server.start()
    for task_id in ids:
        stored = await fetch_task(server, tok, task_id)
        assert stored["state"] == "interrupted", stored
    # Reconnecting from where the socket was cut shows how the tasks ended.
    async with open_wire(url, tok, resume_after=wire.last_seq, chat_id=conv["chat_id"]) as back:
        for task_id in ids:
            await back.task_state(task_id, "interrupted")
        # The conversation goes on after the restart ...
        hours = await back.say("What are your opening hours?")
        await back.message(since=hours, role="agent", kind="reply")
        # ... and the person was told, as after a crash, that the restart cut the work
        # short: a stream with only task events would leave them to guess.
        notices = back.messages(kind="notice", role="agent")
        assert notices, "no notice tells the person that the restart interrupted their tasks"
        assert notices[0]["seq"] < hours
    check_stream(wire.events() + back.events(), chat_id=conv["chat_id"])


async def test_resume_from_the_future_resyncs_and_then_streams_live(shared_servers: Any) -> None:
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as first:
        asked = await first.say("Hello")
        await first.message(since=asked, role="agent", kind="reply")
    last = first.last_seq

    async with open_wire(url, tok, resume_after=last + 50, check=False) as back:
        # welcome carries the true last_seq; then resync; then what comes next, live.
        assert back.welcome["last_seq"] == last
        resync = await back.recv()
        assert (resync["type"], resync["code"]) == ("error", "resync"), resync
        asked = await back.say("What are your opening hours?")
        assert asked == last + 1
        await back.message(since=asked, role="agent", kind="reply")
    check_stream(back.frames, after=last, chat_id=conv["chat_id"])
    assert back.events()[0]["seq"] == last + 1

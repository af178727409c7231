"""``WS /v1/chats/ws``, the Chats view's socket, against a real server (and two nodes).

What a person sees: their list at once, then each chat that appears or changes, live;
another person, another workspace or an agent sees none of it; every look at a task's
contents is on the audit trail, and nothing said is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.security.support import audit_head, audit_rows, expired_token

from .cluster import cluster, postgres_database, redis_process
from .conftest import (
    ServerProcess,
    Wire,
    conversation_ws,
    open_wire,
    start_conversation,
    token,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

__all__ = ["cluster", "postgres_database", "redis_process"]

PRIOR_AUTH = "Start a prior authorization for Ozempic for Dana"


def chats_ws(server: ServerProcess) -> str:
    return f"{server.ws}/v1/chats/ws"


@asynccontextmanager
async def open_list(server: ServerProcess, tok: str) -> AsyncIterator[Wire]:
    """A greeted Chats-view socket whose first frames (welcome, chats) were received."""
    async with connect(chats_ws(server), max_size=2**20) as socket:
        wire = Wire(socket)
        await socket.send(json.dumps({"type": "hello", "token": tok, "client": "chats"}))
        welcome = await wire.recv()
        assert welcome == {"type": "welcome", "protocol": 1}, welcome
        wire.welcome = welcome
        listed = await wire.recv()
        assert listed["type"] == "chats", listed
        yield wire


def listed(wire: Wire) -> dict[str, dict[str, Any]]:
    """Every chat the socket has shown so far, as last shown, by id."""
    chats: dict[str, dict[str, Any]] = {}
    for frame in wire.frames:
        if frame.get("type") == "chats":
            chats = {c["id"]: c for c in frame["chats"]}
        elif frame.get("type") == "chat":
            chats[frame["chat"]["id"]] = frame["chat"]
    return chats


async def start_prior_auth(server: ServerProcess, tok: str) -> tuple[dict[str, str], str, str]:
    """The conversation, its task's id and chat id."""
    conv = await start_conversation(server, tok)
    async with open_wire(conversation_ws(server, conv["conversation_id"]), tok) as wire:
        asked = await wire.say(PRIOR_AUTH)
        await wire.message(since=asked, role="agent", kind="reply")
        (task_id,) = wire.task_ids()
        return conv, task_id, wire.views(task_id)[0]["chat_id"]


async def test_the_list_then_each_new_chat_and_change_arrive_live_and_are_audited(
    shared_servers: Any,
) -> None:
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    owner = token("chats-owner")
    before = audit_head(server)
    async with (
        open_list(server, owner) as mine,
        open_list(server, token("chats-neighbour")) as neighbour,
        open_list(server, token("chats-owner", workspace="other")) as elsewhere,
        open_list(server, token("prior-auth", role="agent")) as agent,
    ):
        assert listed(mine) == {}
        conv, task_id, task_chat = await start_prior_auth(server, owner)
        # The conversation's chat and the task's chat appear, with the task's state.
        chats = await mine.wait(
            lambda w: (c := listed(w)).get(task_chat, {}).get("state") == "working" and c
        )
        assert set(chats) == {conv["chat_id"], task_chat}, chats
        entry = chats[task_chat]
        assert entry["task_id"] == task_id
        assert entry["kind"] == "task"
        assert entry["conversation_id"] == conv["conversation_id"]
        assert entry["title"].startswith("Prior auth: Ozempic")
        assert entry["last_seq"] >= 2
        assert chats[conv["chat_id"]]["kind"] == "conversation"
        seen = entry["last_seq"]
        # Progress and the end of the task come as they happen.
        await mine.wait(lambda w: listed(w)[task_chat]["state"] == "completed", within=60)
        assert listed(mine)[task_chat]["last_seq"] > seen
        # Nobody else heard of any of it.
        for other in (neighbour, elsewhere, agent):
            with anyio.move_on_after(0.5):
                await other.recv()
            assert [f["type"] for f in other.frames] == ["welcome", "chats"], other.frames
            assert other.frames[1]["chats"] == []
            pong = await other.request({"type": "ping"})
            assert pong["type"] == "pong", pong

    rows = [r for r in audit_rows(server, after=before) if r["channel"] == "ws:/v1/chats/ws"]
    owners = [r for r in rows if r["actor_id"] == "chats-owner" and r["workspace_id"] == "demo"]
    # One for the list, one per chat that came in view: never one per change.
    assert [(r["type"], r["chat_id"]) for r in owners] == [
        ("PHI_RECORD_VIEWED", None),
        ("PHI_RECORD_VIEWED", conv["chat_id"]),
        ("PHI_RECORD_VIEWED", task_chat),
    ], owners
    assert owners[2]["task_id"] == task_id
    for row in rows:
        assert "Ozempic" not in json.dumps(row), row
        assert "Dana" not in json.dumps(row), row
    others = [r for r in rows if r not in owners]
    # The others' own (empty) lists, and no denial: for them the chats do not exist.
    assert {(r["type"], r["chat_id"]) for r in others} == {("PHI_RECORD_VIEWED", None)}, others


async def test_a_reconnect_gets_the_list_as_stored(shared_servers: Any) -> None:
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    owner = token("chats-returning")
    conv, task_id, task_chat = await start_prior_auth(server, owner)
    async with open_list(server, owner) as wire:
        chats = listed(wire)
        assert set(chats) == {conv["chat_id"], task_chat}
        assert chats[task_chat]["task_id"] == task_id
        assert chats[task_chat]["state"] in ("submitted", "working", "completed")
        assert chats[conv["chat_id"]]["last_seq"] >= 3
        # Newest first, as GET /v1/chats lists them.
        assert [c["id"] for c in wire.frames[1]["chats"]] == [task_chat, conv["chat_id"]]


async def test_bad_frames_are_answered_and_the_socket_stays(shared_servers: Any) -> None:
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    async with open_list(server, token("chats-bad")) as wire:
        await wire.socket.send(b"\x00binary")
        assert (await wire.recv())["code"] == "bad_frame"
        await wire.socket.send("not json")
        assert (await wire.recv())["code"] == "bad_frame"
        await wire.socket.send('{"type": "ping", "type": "say", "id": "d"}')
        assert (await wire.recv())["code"] == "bad_frame"
        for frame in (
            {"type": "say", "text": "hello"},
            {"type": "task.list"},
            {"type": "task.status", "task_id": "task_x"},
            {"type": "task.cancel", "task_id": "task_x"},
        ):
            answer = await wire.request(frame)
            assert answer["type"] == "error", answer
            assert answer["code"] == "unknown_type", answer
        await wire.socket.send(json.dumps({"type": "hello", "token": token("chats-bad")}))
        assert (await wire.recv())["code"] == "bad_frame"
        refused = await wire.request({"type": "refresh", "token": token("someone-else")})
        assert refused["code"] == "unauthorized", refused
        renewed = await wire.request({"type": "refresh", "token": token("chats-bad")})
        assert renewed == {"type": "ack", "id": renewed["id"]}, renewed
        assert (await wire.request({"type": "ping"}))["type"] == "pong"
        await wire.socket.send("x" * 70_000)
        assert await wire.closed() == 1009


@pytest.mark.parametrize("tok", [expired_token("pat"), "not-a-token"])
async def test_a_socket_without_a_valid_token_is_closed_4401(shared_servers: Any, tok: str) -> None:
    server = shared_servers(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    async with connect(chats_ws(server)) as socket:
        await socket.send(json.dumps({"type": "hello", "token": tok}))
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


@pytest.mark.postgres
async def test_a_task_started_on_one_node_shows_on_a_list_open_on_another(
    cluster: Any,
) -> None:
    a, b = cluster(2, SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    owner = token()
    async with open_list(b, owner) as wire, open_list(b, token("bob")) as bobs:
        conv, _task_id, task_chat = await start_prior_auth(a, owner)
        await wire.wait(lambda w: listed(w).get(task_chat, {}).get("state") == "working")
        assert conv["chat_id"] in listed(wire)
        await wire.wait(lambda w: listed(w)[task_chat]["state"] == "completed", within=60)
        assert [f["type"] for f in bobs.frames] == ["welcome", "chats"], bobs.frames

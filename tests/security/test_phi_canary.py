"""A canary patient goes through every read path; its PHI never lands where it must not.

Before the server starts, a patient whose name, date of birth, record number and
medicine are canary strings is added to its database (the server only upserts the
demo's own patients; other rows stay). The owner then starts background work about
that patient and reads it every way PROTOCOL.md offers, strangers try to, and bad
frames and bad requests carry the canaries in every field they have. Afterwards:

- the canaries did reach the owner (so the check below is not vacuous);
- none is in any column of the audit table, in any line the server logged, or in any
  error frame, error body or close reason;
- the ``PHI_RECORD_VIEWED`` records are exactly the reads made: one per read, each
  with its channel and reader, including the agents' own reads of their tasks.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agents.models import Patient
from server.storage.engine import create_engine_for
from server.storage.sql_store import SqlStore
from tests.e2e.conftest import (
    ServerProcess,
    Wire,
    chat_ws,
    conversation_ws,
    headers,
    open_wire,
    start_conversation,
    token,
)

from .support import audit_rows, expired_token

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CANARY = Patient(
    workspace_id="demo",
    id="pt-canary",
    name="Zyxw Canaryperson",
    date_of_birth="1911-11-11",
    mrn="MRN-CANARY-7731",
    phone="+1 555-0177",
    onboarding_complete=True,
    medications=("Canarozempic 2 mg weekly",),
    allergies=("canarycillin",),
    conditions=("canary fever",),
    provider="Dr. Quentin Canarydoc",
    insurer="Canary Mutual",
)
CANARIES = (
    "Zyxw",
    "Canaryperson",
    "1911-11-11",
    "November 11, 1911",
    "MRN-CANARY-7731",
    "CANARY-7731",
    "Canarozempic",
    "canarycillin",
    "canary fever",
    "Canarydoc",
    "Canary Mutual",
    "555-0177",
)

OWNER = token("pat")
STRANGER = token("mallory")
PRIOR_AUTH = "Start a prior authorization for Canarozempic for Zyxw Canaryperson"
STATUS = "Any news on the Canarozempic request?"
RECORDS = "Look up Canaryperson's and Dana's records and cross-reference them"


def canaries_in(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lowered = text.lower()
    return [c for c in CANARIES if c.lower() in lowered]


class Reads:
    """The audited reads made, as (channel, reader, task id) — what the trail must hold."""

    def __init__(self) -> None:
        self.expected: Counter[tuple[str, str, str | None]] = Counter()

    def add(self, channel: str, reader: str = "pat", task_id: str | None = None) -> None:
        self.expected[channel, reader, task_id] += 1


class Errors:
    """Every error frame, error body and close reason the server sent."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def frame(self, frame: dict[str, Any], code: str) -> None:
        assert frame["type"] == "error", frame
        assert frame["code"] == code, frame
        self.seen.append(json.dumps(frame))

    def response(self, response: httpx.Response, status: int) -> None:
        assert response.status_code == status, (response.request.url, response.text)
        assert set(response.json()) == {"error"}, response.text
        self.seen.append(response.text)
        self.seen.extend(f"{k}: {v}" for k, v in response.headers.items())


async def seed_canary(database_url: str) -> None:
    store = SqlStore(create_engine_for(database_url))
    try:
        await store.create_schema()
        await store.save_patients([CANARY])
    finally:
        await store.close()


async def refused_socket(url: str, tok: str | None) -> tuple[int, str]:
    async with connect(url) as socket:
        hello: dict[str, Any] = {"type": "hello", "client": "viewer"}
        if tok is not None:
            hello["token"] = tok
        await socket.send(json.dumps(hello))
        close = None
        try:
            while True:
                frame = json.loads(await socket.recv())
                assert frame["type"] != "welcome", frame
        except ConnectionClosed as exc:
            close = exc.rcvd
    assert close is not None, "closed without a close frame"
    return close.code, close.reason


async def bad_frames(wire: Wire, task_id: str, errors: Errors) -> None:
    """Frames that fail every way a frame can, each carrying canaries where it can."""
    socket = wire.socket
    sent: list[tuple[Any, str]] = [
        ({"type": "say", "id": "e1", "text": {"name": "Zyxw Canaryperson"}}, "bad_frame"),
        ({"type": "Canarozempic", "id": "e2"}, "unknown_type"),
        ({"type": "task.status", "id": "e3", "task_id": "Zyxw Canaryperson"}, "not_found"),
        ({"type": "task.status", "id": "e4", "task_id": "MRN-CANARY-7731"}, "not_found"),
        ({"type": "task.cancel", "id": "e5", "task_id": "1911-11-11"}, "not_found"),
        (
            {"type": "task.instruct", "id": "e6", "task_id": "MRN-CANARY-7731", "text": "x"},
            "not_found",
        ),
        # The task has ended: new instructions are a conflict, and are not echoed.
        (
            {"type": "task.instruct", "id": "e7", "task_id": task_id, "text": "Canarozempic"},
            "conflict",
        ),
        ({"type": "say", "id": "e8", "text": "Zyxw Canaryperson " * 1000}, "too_large"),
        ({"type": "speech", "state": "Canaryperson"}, "bad_frame"),
        ({"type": "hello", "token": "Zyxw.Canaryperson.1911"}, "bad_frame"),
    ]
    for frame, code in sent:
        await socket.send(json.dumps(frame))
        errors.frame(await wire.until(lambda f: f.get("type") == "error"), code)
    await socket.send('{"type": "say", "text": "Zyxw Canaryperson"')  # not JSON
    errors.frame(await wire.until(lambda f: f.get("type") == "error"), "bad_frame")
    await socket.send(b"MRN-CANARY-7731 Zyxw Canaryperson")  # binary
    errors.frame(await wire.until(lambda f: f.get("type") == "error"), "bad_frame")


async def bad_requests(server: ServerProcess, ids: dict[str, str], errors: Errors) -> None:
    """HTTP requests that are refused, each carrying canaries where it can."""
    task, chat, conversation = ids["task"], ids["task_chat"], ids["conversation"]
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        owner, stranger = headers(OWNER), headers(STRANGER)
        errors.response(await client.get("/v1/tasks/MRN-CANARY-7731", headers=owner), 404)
        errors.response(await client.get("/v1/tasks/Zyxw%20Canaryperson", headers=owner), 404)
        errors.response(
            await client.get(f"/v1/chats/{chat}/events?after=Canaryperson", headers=owner), 400
        )
        errors.response(
            await client.post(
                f"/v1/tasks/{task}/messages", json={"text": "Canarozempic"}, headers=owner
            ),
            409,
        )
        errors.response(
            await client.post(
                f"/v1/tasks/{task}/messages", json={"text": 1911, "n": "Zyxw"}, headers=owner
            ),
            400,
        )
        errors.response(
            await client.post(
                "/v1/conversations", json={"agent_id": "MRN-CANARY-7731"}, headers=owner
            ),
            404,
        )
        errors.response(
            await client.post(
                "/v1/conversations",
                content=b'{"agent_id": "Zyxw Canaryperson"',
                headers={**owner, "content-type": "application/json"},
            ),
            400,
        )
        listed = await client.get(
            "/v1/tasks", params={"conversation_id": "Zyxw Canaryperson"}, headers=owner
        )
        assert listed.json() == {"tasks": []}
        # Strangers, the unauthenticated, and tokens that are canaries themselves.
        for path in (
            f"/v1/tasks/{task}",
            f"/v1/chats/{chat}/events",
            f"/v1/conversations/{conversation}/events",
        ):
            errors.response(await client.get(path, headers=stranger), 404)
            errors.response(await client.get(path), 401)
            errors.response(await client.get(path, headers=headers(expired_token("pat"))), 401)
            errors.response(await client.get(path, headers=headers("Zyxw.Canaryperson.1")), 401)
            errors.response(
                await client.get(path, headers={"Authorization": "Canaryperson MRN-CANARY-7731"}),
                401,
            )
        errors.response(
            await client.post(
                f"/v1/tasks/{task}/cancel", json={"reason": "Canarozempic"}, headers=stranger
            ),
            404,
        )
        errors.response(await client.get("/v1/audit/events", headers=owner), 404)
        errors.response(await client.get("/v1/Zyxw-Canaryperson", headers=owner), 404)


async def test_canaries_reach_the_owner_and_nothing_else(
    server_factory: Any, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'canary.db'}"
    await seed_canary(database_url)
    # A prior authorization takes about two seconds at this scale.
    server = server_factory(database_url, SWITCHBOARD_TOOL_LATENCY_SCALE="0.3")
    reads, errors = Reads(), Errors()
    owner_saw: list[str] = []

    conv = await start_conversation(server, OWNER)
    conversation_url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(conversation_url, OWNER, chat_id=conv["chat_id"]) as wire:
        # Nothing stored yet: the (empty) replay shows no task, so it is not a read.
        asked = await wire.say(PRIOR_AUTH)
        await wire.message(since=asked, role="agent", kind="reply")
        (auth,) = wire.task_ids()

        # The primary agent checks on its task: its own read, on its own channel.
        asked = await wire.say(STATUS)
        await wire.message(since=asked, role="agent", kind="reply", task_id=auth)
        reads.add("agent:status", "front-desk", auth)

        status = await wire.request({"type": "task.status", "task_id": auth})
        assert status["type"] == "result", status
        reads.add("ws:task.status", task_id=auth)
        listed = await wire.request({"type": "task.list"})
        assert [t["id"] for t in listed["tasks"]] == [auth]
        reads.add("ws:task.list")

        asked = await wire.say(RECORDS)
        await wire.message(since=asked, role="agent", kind="reply")
        lookups = [t for t in wire.task_ids() if t != auth]
        assert len(lookups) == 2, wire.task_ids()

        # Two follow-ups reach this socket live: the prior auth's and the roll-up.
        await wire.message(kind="followup", task_id=auth, within=30)
        await wire.wait(lambda w: len(w.messages(kind="followup")) == 2, within=30)
        reads.add("ws:followup", task_id=auth)
        reads.add("ws:followup")
        for task_id in (auth, *lookups):
            reads.add("agent:child_result", "front-desk", task_id)
        auth_chat = wire.views(auth)[0]["chat_id"]
        ids = {"task": auth, "task_chat": auth_chat, "conversation": conv["conversation_id"]}

        await bad_frames(wire, auth, errors)
        for task_id in lookups:
            await wire.task_state(task_id, "completed")
        owner_saw.extend(json.dumps(f) for f in wire.frames if f.get("type") != "error")
        last_seq = wire.last_seq

    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        owner = headers(OWNER)
        answer = await client.get(
            "/v1/tasks", params={"conversation_id": conv["conversation_id"]}, headers=owner
        )
        assert len(answer.json()["tasks"]) == 3
        reads.add("http:GET /v1/tasks")
        owner_saw.append(answer.text)
        for task_id in (auth, lookups[0]):
            answer = await client.get(f"/v1/tasks/{task_id}", headers=owner)
            assert answer.status_code == 200
            reads.add("http:GET /v1/tasks/{task_id}", task_id=task_id)
            owner_saw.append(answer.text)
        for chat_id in (auth_chat, conv["chat_id"]):
            answer = await client.get(f"/v1/chats/{chat_id}/events", headers=owner)
            assert answer.status_code == 200
            reads.add("http:GET /v1/chats/{chat_id}/events")
            owner_saw.append(answer.text)
        events_path = f"/v1/conversations/{conv['conversation_id']}/events"
        answer = await client.get(events_path, params={"limit": 1000}, headers=owner)
        assert answer.status_code == 200
        reads.add("http:GET /v1/conversations/{conversation_id}/events")
        owner_saw.append(answer.text)
        # A page with nothing on it shows no task: not a read.
        answer = await client.get(events_path, params={"after": last_seq}, headers=owner)
        assert answer.json() == {"events": []}
        answer = await client.get("/v1/chats", headers=owner)
        assert answer.status_code == 200
        reads.add("http:GET /v1/chats")
        owner_saw.append(answer.text)

    # Watching the sub-agent's chat, and its status there.
    async with open_wire(chat_ws(server, auth_chat), OWNER, chat_id=auth_chat) as tab:
        reads.add("ws:/v1/chats/{chat_id}/ws")
        status = await tab.request({"type": "task.status", "task_id": auth})
        assert status["type"] == "result"
        reads.add("ws:chat.task.status")
        owner_saw.extend(json.dumps(f) for f in tab.frames)
    async with open_wire(chat_ws(server, conv["chat_id"]), OWNER, chat_id=conv["chat_id"]) as tab:
        reads.add("ws:/v1/chats/{chat_id}/ws")
    # Coming back: a replay that shows tasks is one read; one that shows nothing is none.
    async with open_wire(conversation_url, OWNER, resume_after=0, chat_id=conv["chat_id"]) as back:
        await back.wait(lambda w: w.last_seq == last_seq)
        reads.add("ws:replay")
        owner_saw.extend(json.dumps(f) for f in back.frames)
    async with open_wire(
        conversation_url, OWNER, resume_after=last_seq, chat_id=conv["chat_id"]
    ) as back:
        assert back.events() == []

    # What is refused: bad frames above, bad requests and strangers here.
    await bad_requests(server, ids, errors)
    for url in (chat_ws(server, auth_chat), conversation_url):
        code, reason = await refused_socket(url, STRANGER)
        assert code == 4404
        errors.seen.append(reason)
        code, reason = await refused_socket(url, "Zyxw.Canaryperson.MRN-CANARY-7731")
        assert code == 4401
        errors.seen.append(reason)

    # The canaries did reach the owner, so finding none elsewhere means something.
    assert set(canaries_in("\n".join(owner_saw))) >= {
        "Zyxw",
        "Canaryperson",
        "1911-11-11",
        "MRN-CANARY-7731",
        "Canarozempic",
    }

    rows = audit_rows(server)
    server.stop()  # every line it will log is now written
    logs = server.logs()
    assert logs.count("\n") > 20, "the server logged its requests"
    for line in logs.splitlines():
        assert not canaries_in(line), line
    for error in errors.seen:
        assert not canaries_in(error), error
    for row in rows:
        assert not canaries_in(json.dumps(row)), row

    # Where a channel's reads were noted without a task id, compare them without it.
    loose = {channel for channel, _, task_id in reads.expected if task_id is None}

    def key(channel: str, reader: str, task_id: str | None) -> tuple[str, str, str | None]:
        return (channel, reader, None if channel in loose else task_id)

    viewed = Counter(
        key(r["channel"], r["actor_id"], r["task_id"])
        for r in rows
        if r["type"] == "PHI_RECORD_VIEWED"
    )
    expected: Counter[tuple[str, str, str | None]] = Counter()
    for (channel, reader, read_task), count in reads.expected.items():
        expected[key(channel, reader, read_task)] += count
    assert viewed == expected, f"missing: {expected - viewed}, unexpected: {viewed - expected}"
    # Every refusal was recorded, none as a read.
    denied = [r for r in rows if r["type"] == "ACCESS_DENIED"]
    assert {r["actor_id"] for r in denied} == {"pat", "mallory"}
    assert not [r for r in rows if r["actor_id"] == "mallory" and r["type"] != "ACCESS_DENIED"]

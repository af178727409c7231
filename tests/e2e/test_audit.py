"""The audit trail as an auditor reads it: every look at a task's contents, every refusal,
and never the contents themselves."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .conftest import (
    ServerProcess,
    chat_ws,
    conversation_ws,
    headers,
    open_wire,
    start_conversation,
    token,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

OWNER = token("pat")
AUDITOR = token("compliance", role="auditor")
# Words of the conversation, the patients and the results: none may reach the trail.
# FHIR AuditEvent outcome codes: 0 success, 4 a minor failure (a refused access).
SUCCESS = "0"
PHI = ("Alice", "Moreno", "Bob", "Carol", "onboarding", "voicemail", "moved", "Reach every")


async def trail(server: ServerProcess) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        after = 0
        while True:
            answer = await client.get(
                "/v1/audit/events",
                params={"after": after, "limit": 1000},
                headers=headers(AUDITOR),
            )
            assert answer.status_code == 200, answer.text
            page = answer.json()["events"]
            records.extend(page)
            if len(page) < 1000:
                return records
            after = page[-1]["seq"]


async def new_records(server: ServerProcess, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    records = await trail(server)
    assert records[: len(before)] == before, "the trail changed what it had recorded"
    return records[len(before) :]


def viewed(records: list[dict[str, Any]], **fields: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r["type"] == "PHI_RECORD_VIEWED"
        and r["outcome"] == SUCCESS
        and all(r.get(k) == v for k, v in fields.items())
    ]


async def test_reads_and_refusals_are_recorded_without_contents(server: ServerProcess) -> None:
    conv = await start_conversation(server, OWNER)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), OWNER, chat_id=conv["chat_id"]
    ) as wire:
        before = await trail(server)
        await wire.say("Reach every patient who hasn't completed onboarding")
        await wire.message(kind="followup", within=30)
        task_ids = wire.task_ids()
        # The roll-up carries the tasks' results: its delivery is a recorded read.
        assert viewed(await new_records(server, before), actor_id="pat")

        before = await trail(server)
        status = await wire.request({"type": "task.status", "task_id": task_ids[0]})
        assert status["type"] == "result"
        assert viewed(await new_records(server, before), actor_id="pat", task_id=task_ids[0])

    task_chat = wire.views(task_ids[1])[0]["chat_id"]
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        before = await trail(server)
        read = await client.get(f"/v1/tasks/{task_ids[1]}", headers=headers(OWNER))
        assert read.status_code == 200
        assert viewed(await new_records(server, before), actor_id="pat", task_id=task_ids[1])

        before = await trail(server)
        events = await client.get(f"/v1/chats/{task_chat}/events", headers=headers(OWNER))
        assert events.status_code == 200
        assert viewed(await new_records(server, before), actor_id="pat", chat_id=task_chat)

        # A refusal is recorded too, and the stranger still sees only "not found".
        before = await trail(server)
        denied = await client.get(f"/v1/tasks/{task_ids[2]}", headers=headers(token("mallory")))
        assert denied.status_code == 404
        refusals = [
            r
            for r in await new_records(server, before)
            if r["type"] == "ACCESS_DENIED" and r["actor_id"] == "mallory"
        ]
        assert refusals, "the refused attempt left no trace"
        assert SUCCESS not in {r["outcome"] for r in refusals}

        # The trail is the auditor's alone.
        hidden = await client.get("/v1/audit/events", headers=headers(OWNER))
        assert hidden.status_code == 404
        assert hidden.json() == {"error": {"code": "not_found", "message": "not found"}}

    before = await trail(server)
    async with open_wire(chat_ws(server, task_chat), OWNER, chat_id=task_chat) as tab:
        await tab.task_state(task_ids[1], "completed")
    assert viewed(await new_records(server, before), actor_id="pat", chat_id=task_chat)

    records = await trail(server)
    assert [r["seq"] for r in records] == sorted({r["seq"] for r in records})
    assert {r["workspace_id"] for r in records} == {"demo"}
    # Random ids and hashes aside (a name could turn up in them by chance), nothing
    # in a record may carry what the tasks were about.
    opaque = {"id", "task_id", "chat_id", "conversation_id", "request_id", "prev_hash", "hash"}
    text = json.dumps([{k: v for k, v in r.items() if k not in opaque} for r in records])
    for word in PHI:
        assert word not in text, f"{word!r} reached the audit trail"

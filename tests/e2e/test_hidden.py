"""For anyone but its owners, a task, its chat and its conversation do not exist.

Another person of the workspace, a person of another workspace, an agent of the
workspace that did not start the task, and a service acting for someone else all get
exactly what a random id gets: the same 404 body, byte for byte, on every route, and
4404 on both sockets. Nothing they try changes the task. The owner gets 200s.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from .conftest import (
    ServerProcess,
    Wire,
    chat_ws,
    conversation_ws,
    headers,
    open_wire,
    start_conversation,
    token,
)
from .protocol_check import TERMINAL_STATES, task_view_problems

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

OWNER = token("pat")
STRANGERS = {
    "another person of the workspace": token("mallory"),
    "the same id in another workspace": token("pat", workspace="other"),
    "a person of another workspace": token("mallory", workspace="other"),
    "the agent running the task, which did not start it": token("outreach-caller", role="agent"),
    "another agent of the workspace": token("records-clerk", role="agent"),
    "a service acting for another person": token("bridge", role="service", act_for="mallory"),
}


def random_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def routes(task_id: str, chat_id: str, conversation_id: str) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) of every HTTP route that reaches a task or a chat."""
    return [
        ("GET", f"/v1/tasks/{task_id}", None),
        ("POST", f"/v1/tasks/{task_id}/messages", {"text": "Say hello from me"}),
        ("POST", f"/v1/tasks/{task_id}/cancel", {"reason": "mine now"}),
        ("GET", f"/v1/chats/{chat_id}/events", None),
        ("GET", f"/v1/conversations/{conversation_id}/events", None),
    ]


async def socket_close_code(url: str, tok: str) -> int | None:
    async with connect(url) as socket:
        wire = Wire(socket)
        await socket.send(json.dumps({"type": "hello", "token": tok, "client": "viewer"}))
        code = await wire.closed()
        assert not [f for f in wire.frames if f.get("type") == "welcome"], wire.frames
        return code


async def assert_hidden(
    server: ServerProcess, task_ids: list[str], chat_ids: list[str], conv: dict[str, str]
) -> None:
    """Every stranger sees every route of the owner's records exactly like a random id."""
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        for who, tok in STRANGERS.items():
            nothing = routes(random_id("task"), random_id("chat"), random_id("conv"))
            reference = [
                await client.request(m, p, json=b, headers=headers(tok)) for m, p, b in nothing
            ]
            for answer in reference:
                assert answer.status_code == 404, (who, answer.request.url, answer.text)
            assert reference[0].json() == {"error": {"code": "not_found", "message": "not found"}}
            targets = [(t, c) for t, c in zip(task_ids, chat_ids, strict=True)]
            targets.append((task_ids[0], conv["chat_id"]))
            for task_id, chat_id in targets:
                for (method, path, body), random_answer in zip(
                    routes(task_id, chat_id, conv["conversation_id"]), reference, strict=True
                ):
                    answer = await client.request(method, path, json=body, headers=headers(tok))
                    assert answer.status_code == 404, (who, method, path, answer.text)
                    assert answer.content == random_answer.content, (who, method, path)
                    assert answer.headers.get("content-type") == random_answer.headers.get(
                        "content-type"
                    )
            listed = await client.get(
                "/v1/tasks",
                params={"conversation_id": conv["conversation_id"]},
                headers=headers(tok),
            )
            assert listed.status_code == 200, (who, listed.text)
            assert listed.json() == {"tasks": []}, who
            chats = await client.get("/v1/chats", headers=headers(tok))
            if chats.status_code == 200:
                visible = {c["id"] for c in chats.json()["chats"]}
                assert not visible & {*chat_ids, conv["chat_id"]}, who
            else:
                assert chats.status_code == 404, (who, chats.text)

            for url in (
                conversation_ws(server, conv["conversation_id"]),
                chat_ws(server, chat_ids[0]),
                chat_ws(server, conv["chat_id"]),
                conversation_ws(server, random_id("conv")),
                chat_ws(server, random_id("chat")),
            ):
                assert await socket_close_code(url, tok) == 4404, (who, url)


async def test_strangers_see_nothing_and_change_nothing(server_factory: Any) -> None:
    # Calls take 12 s: the first round runs against live tasks (the owner cancels them).
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="4")
    conv = await start_conversation(server, OWNER)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), OWNER, chat_id=conv["chat_id"]
    ) as wire:
        asked = await wire.say("Reach every patient who hasn't completed onboarding")
        await wire.message(since=asked, role="agent", kind="reply")
        task_ids = wire.task_ids()
        assert len(task_ids) == 3
        chat_ids = [wire.views(t)[0]["chat_id"] for t in task_ids]
        await wire.wait(
            lambda w: all(v["state"] == "working" for t in task_ids for v in w.views(t)[-1:])
        )

        await assert_hidden(server, task_ids, chat_ids, conv)

        async with httpx.AsyncClient(base_url=server.http, timeout=15) as owner:
            # Nothing the strangers tried reached the tasks.
            for task_id, chat_id in zip(task_ids, chat_ids, strict=True):
                read = await owner.get(f"/v1/tasks/{task_id}", headers=headers(OWNER))
                assert read.status_code == 200, read.text
                view = read.json()["task"]
                assert not task_view_problems(view, "GET /v1/tasks/{id}")
                assert view["state"] == "working", view
                chat = await owner.get(f"/v1/chats/{chat_id}/events", headers=headers(OWNER))
                assert chat.status_code == 200
                assert not [e for e in chat.json()["events"] if "from me" in e.get("text", "")]
            assert not [v for v in wire.views() if v["state"] in ("cancelling", "cancelled")]

            # The owner does get through, on every route.
            listed = await owner.get(
                "/v1/tasks",
                params={"conversation_id": conv["conversation_id"]},
                headers=headers(OWNER),
            )
            assert listed.status_code == 200
            assert {t["id"] for t in listed.json()["tasks"]} == set(task_ids)
            events = await owner.get(
                f"/v1/conversations/{conv['conversation_id']}/events", headers=headers(OWNER)
            )
            assert events.status_code == 200
            assert events.json()["events"][0]["text"].startswith("Reach every patient")
            told = await owner.post(
                f"/v1/tasks/{task_ids[0]}/messages",
                json={"text": "Mention the new patient portal"},
                headers=headers(OWNER),
            )
            assert told.status_code == 202, told.text
            for task_id in task_ids:
                cancelled = await owner.post(
                    f"/v1/tasks/{task_id}/cancel", json={}, headers=headers(OWNER)
                )
                assert cancelled.status_code == 202, cancelled.text
                assert cancelled.json()["task"]["state"] in ("cancelling", *TERMINAL_STATES)
        for task_id in task_ids:
            await wire.task_state(task_id, "cancelled")

    # And once the tasks have ended, still nothing for anyone else.
    await assert_hidden(server, task_ids, chat_ids, conv)

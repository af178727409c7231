"""The LLM brain end to end: a real small model on loopback, a workspace file's agents on it.

SmolLM2-135M-Instruct runs behind llama.cpp's own OpenAI-compatible HTTP server
(``switchboard local-model``, in its own process); the northwind workspace's agents
think with it (``[brains.local]``, ``output = "json"``), applied to a node with a real
secret, driven over the WebSocket. A model this small decides poorly: what is asserted
is the wiring — decisions land as tasks, status and cancellation come from live state,
streamed pieces add up to the stored text — not its judgement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from server import local_model

from ..tool_servers import ELIGIBILITY_TOKEN
from .conftest import conversation_ws, headers, open_wire
from .test_workspace_file import SECRET, apply, eligibility_api, person_token, write_workspace

__all__ = ["eligibility_api"]

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.model]

HELPERS = {"benefits-checker", "document-clerk", "referral-caller"}


def llm_workspace(path: Path, api: str, model: str) -> Path:
    """The northwind workspace with every agent on the local model, and a slow caller."""
    write_workspace(path, api)
    text = path.read_text().replace("[[agents]]\n", '[[agents]]\nbrain = "local"\n')
    port = api.rsplit(":", 1)[1]
    text += f"""
[brains.local]
kind = "openai"
base_url = "{model}"
model = "{local_model.MODEL_NAME}"
output = "json"
timeout = 60
"""
    text = text.replace(
        "[[mcp_servers]]",
        f"""[[tools]]
name = "referral.call"
description = "Phone the referring clinic and wait on hold for an answer."
expected_latency = 30
url = "http://127.0.0.1:{port}/slow"
timeout = 60

[[mcp_servers]]""",
    ).replace(
        '[[tools]]\nname = "eligibility.check"',
        """[[agents]]
brain = "local"
id = "referral-caller"
name = "Referral caller"
description = "Phones other clinics about referrals and waits on hold for their answer."
examples = ["call the clinic about Tom's referral"]
tools = ["referral.call"]

[[tools]]
name = "eligibility.check\"""",
    )
    path.write_text(text)
    return path


def deltas(frames: list[dict[str, Any]], message_id: str) -> list[str]:
    return [
        f["text"]
        for f in frames
        if f.get("type") == "message.delta" and f.get("message_id") == message_id
    ]


def check_deltas(frames: list[dict[str, Any]]) -> int:
    """Every streamed message's pieces add up to its stored text; how many streamed."""
    streamed = 0
    for message in (f for f in frames if f.get("type") == "message" and "seq" in f):
        pieces = deltas(frames, message["message_id"])
        if pieces:
            streamed += 1
            assert "".join(pieces) == message["text"], (pieces, message["text"])
    return streamed


async def test_agents_on_a_real_model_delegate_report_status_and_cancel(
    tmp_path: Path, server_factory: Any, eligibility_api: str, local_model_url: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'northwind.db'}"
    path = llm_workspace(tmp_path / "northwind.toml", eligibility_api, local_model_url)
    applied = apply(path, database_url)
    assert applied.returncode == 0, applied.stderr
    server = server_factory(
        database_url,
        SWITCHBOARD_SECRET=SECRET,
        NORTHWIND_ELIGIBILITY_AUTH=f"Bearer {ELIGIBILITY_TOKEN}",
    )
    tok = person_token()
    async with httpx.AsyncClient(base_url=server.http) as client:
        created = await client.post("/v1/conversations", json={}, headers=headers(tok))
        assert created.status_code == 201, created.text
        conversation_id = created.json()["conversation_id"]

    async with open_wire(conversation_ws(server, conversation_id), tok) as wire:
        # A delegation: the model's decision becomes a task of one of the team's
        # agents, whose own steps (on the same model) call the workspace's tools.
        seq = await wire.say("Could you check Maria Lopez's insurance eligibility?")
        reply = await wire.message(since=seq, role="agent", kind="reply", within=60)
        (first,) = wire.views()
        assert first["agent"]["id"] in HELPERS
        assert deltas(wire.frames, reply["message_id"]), "the reply was not streamed"
        done = await wire.task_state(first["id"], "completed", "failed", within=90)
        await wire.message(since=seq, kind="followup", task_id=first["id"], within=30)

        # A status question: answered from the task's live state, not the model's words.
        seq = await wire.say("Is the eligibility check done?")
        status = await wire.message(since=seq, role="agent", kind="reply", within=60)
        assert done["title"] in status["text"], status["text"]
        assert len(wire.task_ids()) == 1, "a status question started work"

        # A cancel: the running call is stopped and the person told so.
        seq = await wire.say("Please call the clinic about Tom's referral")
        await wire.message(since=seq, role="agent", kind="reply", within=60)
        call = next(v for v in wire.views() if v["id"] != first["id"])
        assert call["agent"]["id"] == "referral-caller", call
        await wire.task_state(call["id"], "working", within=30)
        await wire.message(kind="progress", task_id=call["id"], within=30)
        seq = await wire.say("Please cancel the call to the clinic.")
        answer = await wire.message(since=seq, role="agent", kind="reply", within=60)
        cancelled = await wire.task_state(call["id"], "cancelled", within=30)
        assert cancelled["title"] in answer["text"], answer["text"]

        assert check_deltas(wire.frames) >= 2

    async with httpx.AsyncClient() as client:
        calls = (await client.get(f"{eligibility_api}/calls")).json()
    # The sub-agents' steps reached the workspace's own endpoints, each under its task.
    assert [c["path"] for c in calls if c["task"] == call["id"]] == ["/slow"]
    assert any(c["task"] == first["id"] for c in calls) or first["agent"]["id"] != (
        "benefits-checker"
    )
    logs = server.logs()
    for secret in ("Maria", "Tom Baker", "referral", "insurance", ELIGIBILITY_TOKEN):
        assert secret not in logs, secret

"""The LLM brain on a bad day: faults injected at the model's door, seen over the WebSocket.

The model server here is :mod:`tests.scripted_model`, a real HTTP server that answers
from a script (429, 500, a hang, a malformed tool call, a stream cut midway): fault
injection at the boundary. The happy path against a real model is
``test_llm_brain.py``. The workspace's agents use tool calling (``output = "tools"``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.lowlevel
import httpx
import pytest

from bridges.voice import BRIDGE_ID, Received, VoiceBridge
from server.auth import issue_token

from .. import scripted_model
from ..tool_servers import ELIGIBILITY_TOKEN
from .conftest import ServerProcess, conversation_ws, headers, open_wire
from .test_llm_brain import check_deltas, deltas
from .test_workspace_file import SECRET, apply, eligibility_api, write_workspace

__all__ = ["eligibility_api"]

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TURN_FAILED = "Sorry — I couldn't do that just now. Please try again in a moment."
CANARY = "Quentin Marlowe-Okafor"
"""A patient's name that only the model's answers carry: it must never reach a log."""


@pytest.fixture(scope="module")
def model() -> Iterator[str]:
    with scripted_model.running() as url:
        yield url


async def script(model: str, *answers: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        (await client.post(f"{model}/script", json=list(answers))).raise_for_status()


async def forget(model: str) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        (await client.delete(f"{model}/script")).raise_for_status()


async def received(model: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        return list((await client.get(f"{model}/requests")).json())


@pytest.fixture
def node(tmp_path: Path, server_factory: Any, eligibility_api: str, model: str) -> ServerProcess:
    """A node serving northwind, every agent on the scripted model (2 s per read)."""
    httpx.delete(f"{model}/script", timeout=5).raise_for_status()
    path = write_workspace(tmp_path / "northwind.toml", eligibility_api)
    text = path.read_text().replace("[[agents]]\n", '[[agents]]\nbrain = "scripted"\n')
    text += f"""
[brains.scripted]
kind = "openai"
base_url = "{model}/v1"
model = "scripted"
api_key_env = "NORTHWIND_LLM_KEY"
timeout = 2
"""
    path.write_text(text)
    database_url = f"sqlite:///{tmp_path / 'northwind.db'}"
    applied = apply(path, database_url)
    assert applied.returncode == 0, applied.stderr
    return server_factory(  # type: ignore[no-any-return]
        database_url,
        SWITCHBOARD_SECRET=SECRET,
        NORTHWIND_ELIGIBILITY_AUTH=f"Bearer {ELIGIBILITY_TOKEN}",
        NORTHWIND_LLM_KEY="sk-northwind-canary-key",
    )


def token(person: str = "staff-1") -> str:
    return issue_token(SECRET, workspace="northwind", sub=person, role="person", name="Kim")


async def conversation(node: ServerProcess, tok: str) -> str:
    async with httpx.AsyncClient(base_url=node.http) as client:
        created = await client.post("/v1/conversations", json={}, headers=headers(tok))
        assert created.status_code == 201, created.text
        return str(created.json()["conversation_id"])


def clean_logs(node: ServerProcess) -> None:
    logs = node.logs()
    for secret in (CANARY, "Maria", "sk-northwind-canary-key"):
        assert secret not in logs, secret


async def test_429_and_500_are_retried_and_the_reply_streams(
    node: ServerProcess, model: str
) -> None:
    await script(
        model,
        {"status": 429},
        {"status": 500},
        {"text": f"Hello! {CANARY}'s file is open, how can I help?", "pieces": 5},
    )
    tok = token()
    async with open_wire(conversation_ws(node, await conversation(node, tok)), tok) as wire:
        seq = await wire.say("hi")
        reply = await wire.message(since=seq, role="agent", within=20)
        assert reply["text"] == f"Hello! {CANARY}'s file is open, how can I help?"
        assert len(deltas(wire.frames, reply["message_id"])) == 5
        assert check_deltas(wire.frames) == 1
    asked = await received(model)
    assert len(asked) == 3
    body = asked[-1]
    assert body["stream"] is True
    assert body["model"] == "scripted"
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][-1] == {"role": "user", "content": "hi"}
    offered = {t["function"]["name"] for t in body["tools"]}
    assert offered == {"delegate"}  # no tasks yet: nothing to check, instruct or cancel
    clean_logs(node)


async def test_a_hung_model_fails_the_turn_and_the_conversation_goes_on(
    node: ServerProcess, model: str
) -> None:
    await script(model, *[{"hang": 30}] * 4)
    tok = token()
    async with open_wire(conversation_ws(node, await conversation(node, tok)), tok) as wire:
        seq = await wire.say(f"what is {CANARY}'s date of birth?")
        notice = await wire.message(since=seq, role="agent", within=20)
        assert (notice["kind"], notice["text"]) == ("notice", TURN_FAILED)
        await forget(model)
        await script(model, {"text": "I'm here again."})
        seq = await wire.say("are you there?")
        reply = await wire.message(since=seq, role="agent", within=20)
        assert reply["text"] == "I'm here again."
    clean_logs(node)


async def test_a_malformed_tool_call_is_answered_once_then_the_turn_goes_ahead(
    node: ServerProcess, model: str
) -> None:
    good = {"agent_id": "benefits-checker", "title": "Eligibility", "instructions": CANARY}
    await script(
        model,
        {"tool": "delegate", "arguments": '{"agent_id": "benefits-checker", '},
        {"tool": "delegate", "arguments": good, "text": "On it."},
        {"text": "Covered."},  # the sub-agent's one step: it finishes
    )
    tok = token()
    async with open_wire(conversation_ws(node, await conversation(node, tok)), tok) as wire:
        seq = await wire.say("check the eligibility please")
        reply = await wire.message(since=seq, role="agent", kind="reply", within=20)
        assert reply["text"] == "On it."
        (task,) = wire.views()
        assert task["agent"]["id"] == "benefits-checker"
        done = await wire.task_state(task["id"], "completed", "failed", within=20)
        assert (done["state"], done["result"]) == ("completed", "Covered.")
    second = (await received(model))[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "delegate"
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "error: the arguments are not valid JSON",
    }
    clean_logs(node)


async def test_a_tool_call_malformed_twice_fails_the_turn(node: ServerProcess, model: str) -> None:
    await script(
        model,
        {"tool": "delegate", "arguments": {"agent_id": 7}},
        {"tool": "no_such_tool", "arguments": {}},
    )
    tok = token()
    async with open_wire(conversation_ws(node, await conversation(node, tok)), tok) as wire:
        seq = await wire.say("check the eligibility please")
        notice = await wire.message(since=seq, role="agent", within=20)
        assert (notice["kind"], notice["text"]) == ("notice", TURN_FAILED)
        assert wire.views() == []
    assert len(await received(model)) == 2
    clean_logs(node)


async def test_a_stream_cut_midway_keeps_what_was_said(node: ServerProcess, model: str) -> None:
    said = f"Let me look at {CANARY}'s chart and see what the insurer said"
    await script(model, {"text": said, "pieces": 6, "cut": 3})
    tok = token()
    async with open_wire(conversation_ws(node, await conversation(node, tok)), tok) as wire:
        seq = await wire.say("what did the insurer say?")
        partial = await wire.message(since=seq, role="agent", kind="reply", within=20)
        pieces = deltas(wire.frames, partial["message_id"])
        assert len(pieces) == 3
        assert partial["text"] == "".join(pieces)
        assert said.startswith(partial["text"])
        notice = await wire.message(since=partial["seq"], role="agent", within=20)
        assert (notice["kind"], notice["text"]) == ("notice", TURN_FAILED)
    # Something was already shown: the call is not retried (the person saw it once).
    assert len(await received(model)) == 1
    clean_logs(node)


async def test_a_task_the_caller_may_not_see_gets_the_answer_of_one_that_does_not_exist(
    node: ServerProcess, model: str
) -> None:
    owner = token("staff-1")
    good = {"agent_id": "benefits-checker", "title": "Eligibility", "instructions": "check"}
    await script(
        model, {"tool": "delegate", "arguments": good, "text": "On it."}, {"text": "Covered."}
    )
    async with open_wire(conversation_ws(node, await conversation(node, owner)), owner) as wire:
        seq = await wire.say("check the eligibility please")
        await wire.message(since=seq, role="agent", kind="reply", within=20)
        (theirs,) = wire.task_ids()
        await wire.task_state(theirs, "completed", within=20)

    other = token("staff-2")
    answers: dict[str, list[str]] = {}
    for task_id in (theirs, "task_AAAAAAAAAAAAAAAAAAAAAA"):
        await script(
            model,
            {"tool": "check_status", "arguments": {"task_ids": [task_id]}},
            {"tool": "send_instructions", "arguments": {"task_id": task_id, "text": "hurry"}},
            {"tool": "cancel", "arguments": {"task_ids": [task_id]}},
        )
        async with open_wire(conversation_ws(node, await conversation(node, other)), other) as w:
            said = []
            for words in ("how is it going?", "tell them to hurry", "cancel it"):
                seq = await w.say(words)
                said.append((await w.message(since=seq, role="agent", within=20))["text"])
            assert w.views() == []
        answers[task_id] = said
    assert answers[theirs] == answers["task_AAAAAAAAAAAAAAAAAAAAAA"]
    # The model was offered only what this caller may act on: nothing to check or cancel.
    for body in (await received(model))[-3:]:
        assert {t["function"]["name"] for t in body["tools"]} == {"delegate"}
        assert theirs not in json.dumps(body)


async def test_a_barge_in_abandons_the_reply_being_streamed(
    node: ServerProcess, model: str
) -> None:
    words = "One moment while I read the whole of the notes from the last visit to you now"
    await script(model, {"text": words, "pieces": 16, "every": 0.25}, {"text": "Go ahead."})
    tok = token()
    url = conversation_ws(node, await conversation(node, tok))
    async with open_wire(url, tok, client="voice") as wire:
        seq = await wire.say("read me the notes")
        await wire.wait(lambda w: sum(f.get("type") == "message.delta" for f in w.frames) >= 2)
        await wire.send({"type": "speech", "state": "started"})
        said = await wire.message(since=seq, role="agent", within=20)
        pieces = deltas(wire.frames, said["message_id"])
        # Stored as far as it was said, and not a word further.
        assert said["kind"] == "reply"
        assert said["text"] == "".join(pieces)
        assert words.startswith(said["text"])
        assert len(said["text"]) < len(words)
        await wire.send({"type": "speech", "state": "stopped"})
        seq = await wire.say("sorry, go on")
        reply = await wire.message(since=seq, role="agent", within=20)
        assert reply["text"] == "Go ahead."
    assert not any(f.get("type") == "message" and f.get("text") == TURN_FAILED for f in wire.frames)


async def test_a_sub_agent_whose_model_fails_fails_its_task_alone(
    node: ServerProcess, model: str
) -> None:
    good = {"agent_id": "benefits-checker", "title": "Eligibility", "instructions": CANARY}
    await script(
        model,
        {"tool": "delegate", "arguments": good, "text": "On it."},
        {"tool": "eligibility.check", "arguments": "{oops"},
        {"tool": "eligibility.check", "arguments": "[1, 2]"},
        {"text": "Still here."},
    )
    tok = token()
    async with open_wire(conversation_ws(node, await conversation(node, tok)), tok) as wire:
        seq = await wire.say("check the eligibility please")
        (task,) = await wire.wait(lambda w: w.views())
        done = await wire.task_state(task["id"], "completed", "failed", within=20)
        assert done["state"] == "failed"
        assert (
            done["result"] == "Benefits checker could not finish: its model gave no usable answer."
        )
        await wire.message(since=seq, kind="followup", task_id=task["id"], within=20)
        seq = await wire.say("are you there?")
        assert (await wire.message(since=seq, role="agent", within=20))["text"] == "Still here."
    logs = node.logs()
    assert '"level":"ERROR"' not in logs
    clean_logs(node)


class TimedSpeaker:
    """Says nothing aloud; remembers what it was given to say, and when."""

    def __init__(self) -> None:
        self.said: list[tuple[str, float]] = []

    async def speak(self, text: str) -> None:
        self.said.append((text, time.monotonic()))
        await anyio.lowlevel.checkpoint()

    def stop(self) -> None:
        pass


async def test_a_caller_hears_a_streamed_reply_a_sentence_at_a_time(
    node: ServerProcess, model: str
) -> None:
    words = "Let me look into that for you. It may take a moment. I will call you back."
    await script(model, {"text": words, "pieces": 15, "every": 0.2})
    tok = issue_token(SECRET, workspace="northwind", sub=BRIDGE_ID, role="service", act_for="c1")
    speaker = TimedSpeaker()
    url = conversation_ws(node, await conversation(node, tok))
    async with VoiceBridge(url, tok, speaker=speaker) as call:
        await call.say("can you look into my claim?")
        await call.wait_for_text("call you back")
    (stored_at,) = [
        entry.at
        for entry in call.log
        if isinstance(entry, Received)
        and entry.frame.get("type") == "message"
        and entry.frame.get("role") == "agent"
    ]
    # The first sentence was spoken while the rest was still being written...
    first, first_at = speaker.said[0]
    assert first == "Let me look into that for you."
    assert first_at < stored_at
    # ...and all of it once, in order, nothing twice.
    assert " ".join(text for text, _ in speaker.said) == words

"""Phone callers: nothing of anyone's chart before the agent has verified who is calling.

A caller speaks through a bridge's service token with a ``call`` claim (or, on a
``voice`` connection, without one: the server then gives the connection a call of its
own). Probed as an attacker on the phone would: asking for a chart outright, through
every tool of the demo workspace, guessing identities, and calling back after a real
patient's call. Every try at verification is in the audit trail, without its values.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bridges.wire import new_call_id
from tests.e2e.conftest import (
    ServerProcess,
    Wire,
    conversation_ws,
    headers,
    open_wire,
    start_conversation,
    token,
)
from tests.security.test_patient_scope import TOOL_PROBES

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

BRIDGE = "voice-bridge"
AUDITOR = token("compliance", role="auditor")
ASK = "full name and date of birth"
IDENTITY = "This is Dana Whitfield, born March 14th, 1968"
# Dana's chart and Evan's: none of it may reach an unverified caller.
CHARTS = (
    "Natarajan",
    "1968",
    "March 14",
    "MRN-100234",
    "Bluebridge",
    "semaglutide",
    "penicillin",
    "1959",
    "MRN-100235",
    "Cedar Mutual",
    "Okafor",
)


def caller_token(caller: str = "caller-1", call: str | None = None) -> str:
    claims = {} if call is None else {"call": call}
    return token(BRIDGE, role="service", act_for=caller, **claims)


async def caller_line(server: ServerProcess, tok: str) -> tuple[str, str]:
    conv = await start_conversation(server, tok)
    return conversation_ws(server, conv["conversation_id"]), conv["chat_id"]


async def reply_to(wire: Wire, text: str) -> str:
    asked = await wire.say(text)
    reply = await wire.message(since=asked, role="agent", kind="reply")
    return str(reply["text"])


def leaked(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frames from the server that hold any of :data:`CHARTS` (the caller's words aside)."""
    return [
        f for f in frames if f.get("role") != "user" and any(x in json.dumps(f) for x in CHARTS)
    ]


async def verification_records(server: ServerProcess) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        answer = await client.get(
            "/v1/audit/events", params={"after": 0, "limit": 1000}, headers=headers(AUDITOR)
        )
    assert answer.status_code == 200, answer.text
    return [r for r in answer.json()["events"] if r["type"] == "CALLER_VERIFICATION"]


@pytest.mark.parametrize("tool", sorted(TOOL_PROBES))
async def test_an_unverified_caller_is_asked_who_they_are_and_nothing_is_started(
    server_factory: Any, tool: str
) -> None:
    server = server_factory()
    tok = caller_token(call=new_call_id())
    url, chat_id = await caller_line(server, tok)
    async with open_wire(url, tok, client="voice", chat_id=chat_id) as wire:
        said = await reply_to(wire, TOOL_PROBES[tool].format(name="Dana"))
        assert ASK in said, said
        chart = await reply_to(wire, "Who is Dana Whitfield's provider?")
        assert ASK in chart, chart
    assert not leaked(wire.frames), leaked(wire.frames)
    assert not wire.task_ids(), "work was started for an unverified caller"


async def test_a_verified_caller_gets_the_request_that_waited_and_their_own_chart_only(
    server_factory: Any,
) -> None:
    server = server_factory()
    tok = caller_token(call=new_call_id())
    url, chat_id = await caller_line(server, tok)
    async with open_wire(url, tok, client="voice", chat_id=chat_id) as wire:
        assert ASK in await reply_to(wire, "Who is my provider?")
        asked = await wire.say(IDENTITY)
        verified = await wire.message(since=asked, role="agent", kind="reply")
        assert "confirmed who you are" in verified["text"], verified
        # The question that waited is answered now, unasked again.
        answer = await wire.message(since=verified["seq"], role="agent", kind="reply")
        assert "Natarajan" in answer["text"], answer
        other = await reply_to(wire, "What is Evan Okafor's date of birth?")
    assert "1959" not in other, other
    assert "August" not in other, other
    records = await verification_records(server)
    assert [(r["outcome"], r["reason"]) for r in records] == [("0", "verified")]
    assert "Dana" not in json.dumps(records)
    assert "1968" not in json.dumps(records)


async def test_three_wrong_identities_lock_the_call_and_each_try_is_audited(
    server_factory: Any,
) -> None:
    server = server_factory()
    tok = caller_token(call=new_call_id())
    url, chat_id = await caller_line(server, tok)
    guesses = [
        "This is Dana Whitfield, born August 30th, 1959",  # Evan's birthday
        "Evan Whitfield, March 14th 1968",
        "My name is Dana Okafor and I was born on 03/14/1968",
    ]
    async with open_wire(url, tok, client="voice", chat_id=chat_id) as wire:
        assert ASK in await reply_to(wire, "What's my date of birth?")
        answers = [await reply_to(wire, guess) for guess in guesses]
        # Locked: the right answer, now, verifies no one.
        late = await reply_to(wire, IDENTITY)
        asked = await reply_to(wire, "What's my date of birth?")
    assert ["couldn't match" in a for a in answers] == [True, True, False]
    assert "call you back" in answers[2]
    assert "call you back" in late
    assert "call you back" in asked
    assert not leaked(wire.frames), leaked(wire.frames)
    records = await verification_records(server)
    assert [(r["outcome"], r["reason"]) for r in records] == [
        ("4", "no_match"),
        ("4", "no_match"),
        ("4", "locked"),
        ("4", "locked"),
    ]
    for record in records:
        assert record["actor_id"] == BRIDGE
        assert "caller-1" in record["on_behalf_of"]
        assert not [x for x in ("Dana", "Evan", "Whitfield", "1968", "1959") if x in str(record)]


async def test_a_bridge_that_names_no_call_still_carries_an_unverified_caller(
    server_factory: Any,
) -> None:
    server = server_factory()
    tok = caller_token()
    url, chat_id = await caller_line(server, tok)
    async with open_wire(url, tok, client="voice", chat_id=chat_id) as wire:
        assert ASK in await reply_to(wire, "Who is Dana Whitfield's provider?")
        assert "confirmed who you are" in await reply_to(wire, IDENTITY)
        # The refresh of a token for the same caller keeps this connection's call.
        answer = await wire.request({"type": "refresh", "token": caller_token()})
        assert answer["type"] == "ack", answer
        # And a token for another call is not this socket's principal.
        refused = await wire.request({"type": "refresh", "token": caller_token(call="call-x")})
        assert (refused["type"], refused["code"]) == ("error", "unauthorized"), refused
    assert not leaked(wire.frames[:4]), wire.frames[:4]


async def test_a_second_call_on_the_line_hears_nothing_of_the_first(
    server_factory: Any,
) -> None:
    server = server_factory()
    first = caller_token(call=new_call_id())
    url, chat_id = await caller_line(server, first)
    async with open_wire(url, first, client="voice", chat_id=chat_id) as wire:
        await reply_to(wire, IDENTITY)
        assert "Natarajan" in await reply_to(wire, "Who is my provider?")
        heard_up_to = wire.last_seq

    second = caller_token(call=new_call_id())
    async with open_wire(url, second, client="voice", resume_after=0, check=False) as wire:
        await wire.wait(lambda w: w.last_seq >= heard_up_to)
        again = await reply_to(wire, "Who did you say my provider was?")
        status = await reply_to(wire, "What did I ask you before?")
    # The first call's words reach the bridge (its stream), but none is to be spoken.
    replayed = [f for f in wire.frames if f.get("role") == "agent" and f["seq"] <= heard_up_to]
    assert replayed
    assert not [f for f in replayed if f.get("speak")], replayed
    assert ASK in again, again
    assert not leaked([f for f in wire.frames if f.get("speak")])
    assert "Natarajan" not in status


async def test_a_caller_s_own_reads_are_of_no_patient(server_factory: Any) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="0.3")
    tok = caller_token(call=new_call_id())
    url, chat_id = await caller_line(server, tok)
    async with open_wire(url, tok, client="voice", chat_id=chat_id) as wire:
        await reply_to(wire, IDENTITY)
        await reply_to(wire, "Start a prior authorization for my Ozempic")
        task_id = (await wire.wait(lambda w: w.task_ids() or None))[0]
        listed = await wire.request({"type": "task.list", "id": "l"})
        status = await wire.request({"type": "task.status", "id": "s", "task_id": task_id})
    # What a caller hears of their record, they hear from the agent: the bridge's own
    # reads through the caller's token are of no patient.
    assert listed["tasks"] == [], listed
    assert (status["type"], status["code"]) == ("error", "not_found"), status

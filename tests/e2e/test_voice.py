"""A phone call through the reference voice bridge, against a real server.

The caller is never talked over: unsolicited progress and follow-ups wait for a pause
after the agent's reply (PROTOCOL.md, Voice); speaking over a reply that is still being
produced abandons it, not the background work; a caller who hangs up hears the
follow-up when calling back.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import pytest

from bridges.voice import (
    BRIDGE_ID,
    AgentMessage,
    Disconnected,
    Entry,
    PlaybackStopped,
    PrintingSpeaker,
    Received,
    Sent,
    VoiceBridge,
)
from bridges.wire import SpeechState, new_call_id

from .conftest import (
    ROOT,
    ServerProcess,
    conversation_ws,
    fetch_events,
    start_conversation,
    token,
)
from .protocol_check import check_stream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CALLER = "caller-1"
PRIOR_AUTH = "I need a prior authorization for my Ozempic prescription"
FOLLOWUP = "Quick update on the prior auth you asked about earlier"
IDENTITY = "This is Dana Whitfield, born March 14th, 1968"
VERIFIED = "I've confirmed who you are"


def service_token(caller: str = CALLER, call: str | None = None) -> str:
    """The bridge's token for *caller*; with *call*, for that phone call (a caller)."""
    claims = {} if call is None else {"call": call}
    return token(BRIDGE_ID, role="service", act_for=caller, **claims)


async def new_call(
    server: ServerProcess, *, resume_after: int = 0, words_per_second: float = 0.0
) -> tuple[VoiceBridge, str]:
    tok = service_token()
    conversation_id = (await start_conversation(server, tok))["conversation_id"]
    return bridge_for(server, conversation_id, resume_after, words_per_second), conversation_id


def bridge_for(
    server: ServerProcess,
    conversation_id: str,
    resume_after: int = 0,
    words_per_second: float = 0.0,
) -> VoiceBridge:
    """A new phone call (its own ``call``) on *conversation_id*."""
    speaker = PrintingSpeaker(io.StringIO(), words_per_second)
    return VoiceBridge(
        conversation_ws(server, conversation_id),
        service_token(call=new_call_id()),
        resume_after=resume_after,
        speaker=speaker,
    )


async def verify(call: VoiceBridge) -> AgentMessage:
    """The caller says who they are, and the agent confirms it."""
    await utter(call, IDENTITY)
    return await heard(call, VERIFIED)


async def utter(call: VoiceBridge, text: str) -> int:
    """One caller turn as a telephony bridge sees it: voice, silence, final transcript."""
    await call.speech(SpeechState.STARTED)
    await anyio.sleep(0.2)
    await call.speech(SpeechState.STOPPED)
    seq = await call.say(text)
    assert seq is not None
    return seq


async def heard(call: VoiceBridge, text: str, within: float = 15) -> AgentMessage:
    with anyio.fail_after(within):
        return await call.wait_for_text(text)


async def stored(
    server: ServerProcess, conversation_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the conversation's stored events until one meets *condition*."""
    with anyio.fail_after(15):
        while True:
            events = await fetch_events(
                server, service_token(), f"/v1/conversations/{conversation_id}/events"
            )
            found = [e for e in events if condition(e)]
            if found:
                return found[0]
            await anyio.sleep(0.05)


def received(call: VoiceBridge, text: str) -> AgentMessage | None:
    return next((m for m in call.received if text in m.text), None)


def frames(log: Sequence[Entry], sent: bool = False) -> list[tuple[int, dict[str, Any]]]:
    kind = Sent if sent else Received
    return [(i, dict(e.frame)) for i, e in enumerate(log) if isinstance(e, kind)]


def position(log: Sequence[Entry], message: AgentMessage) -> int:
    """Where in the call's log *message* arrived."""
    return next(i for i, f in frames(log) if f.get("seq") == message.seq and "role" in f)


def task_states(log: Sequence[Entry]) -> list[tuple[int, str]]:
    return [(i, f["task"]["state"]) for i, f in frames(log) if f.get("type") == "task"]


def check_voice_rules(call: VoiceBridge, *, after: int = 0) -> None:
    """PROTOCOL.md, Voice, on what the bridge received, in the order it arrived.

    Every agent message has ``speak: true``; no ``progress`` or ``followup`` arrived
    while the caller was speaking, nor while a turn of theirs waited for its reply (a
    turn the caller spoke over is abandoned, and waits for nothing). *after* is where
    the call resumed.
    """
    problems: list[str] = []
    speaking = False
    waiting: dict[str, int | None] = {}  # say id -> the seq it was stored with
    for index, entry in enumerate(call.log):
        if not isinstance(entry, Sent | Received):
            continue
        frame = entry.frame
        if isinstance(entry, Sent):
            if frame["type"] == "speech":
                speaking = frame["state"] == "started"
                if speaking:
                    waiting.clear()
            elif frame["type"] == "say":
                waiting[frame["id"]] = None
            continue
        if frame.get("type") == "ack" and frame.get("id") in waiting:
            waiting[frame["id"]] = frame.get("seq")
        if frame.get("type") != "message" or frame.get("role") != "agent":
            continue
        where = f"log[{index}] seq={frame['seq']} {frame['kind']} {frame['text'][:40]!r}"
        if frame.get("speak") is not True:
            problems.append(f"{where}: no speak: true")
        if frame["kind"] == "reply":
            waiting = {k: s for k, s in waiting.items() if s is None or s > frame["seq"]}
        elif frame["kind"] in ("progress", "followup"):
            if speaking:
                problems.append(f"{where}: arrived while the caller was speaking")
            if waiting:
                problems.append(f"{where}: arrived before the reply to {sorted(waiting)}")
    assert not problems, "voice rules broken:\n  " + "\n  ".join(problems)
    received = [f for _, f in frames(call.log) if "seq" in f and f.get("type") != "ack"]
    # Held messages arrive after later ones: the contract's seq rules hold in seq order.
    check_stream(sorted(received, key=lambda f: int(f["seq"])), after=after, voice=True)


async def test_a_follow_up_waits_for_a_pause_after_the_reply(server_factory: Any) -> None:
    # The payer decides 3 s after the request; lookups take 0.15 s.
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="0.5")
    call, conversation_id = await new_call(server)
    async with call:
        await utter(call, PRIOR_AUTH)
        # Held until the caller is verified, then taken up.
        await heard(call, "full name and date of birth")
        await verify(call)
        await heard(call, "in the background")
        await utter(call, "What's my date of birth?")
        await heard(call, "Dana Whitfield's date of birth is March 14, 1968")

        # The caller talks on while the payer decides.
        await call.speech(SpeechState.STARTED)
        with anyio.fail_after(15):
            await call.wait_until(
                lambda: ("completed" in dict(task_states(call.log)).values()) or None
            )
        followup = await stored(server, conversation_id, lambda e: e.get("kind") == "followup")
        assert FOLLOWUP in followup["text"]
        await anyio.sleep(0.3)
        assert not [m for m in call.received if m.kind == "followup"], "spoken over the caller"

        await call.speech(SpeechState.STOPPED)
        asked = await call.say("What are your opening hours?")
        reply = await heard(call, "Monday to Friday")
        update = await heard(call, FOLLOWUP)

    # Ready before this turn was even spoken, yet said only after its answer.
    assert asked is not None
    assert followup["seq"] < asked < reply.seq
    assert update.seq == followup["seq"]
    assert update.kind == "followup"
    assert position(call.log, reply) < position(call.log, update)
    # The task events themselves were not delayed.
    completed = min(i for i, state in task_states(call.log) if state == "completed")
    assert completed < position(call.log, reply)
    check_voice_rules(call)
    # Nothing held was dropped: every agent message stored was received, and spoken.
    events = await fetch_events(
        server, service_token(), f"/v1/conversations/{conversation_id}/events"
    )
    agent = {e["seq"] for e in events if e["type"] == "message" and e["role"] == "agent"}
    assert {m.seq for m in call.received} == agent
    assert {m.seq for m in call.heard} == agent
    assert {m.kind for m in call.received} == {"reply", "progress", "followup"}


async def test_barge_in_abandons_the_reply_but_not_the_background_work(
    server_factory: Any,
) -> None:
    # A lookup takes 0.9 s: run inline, so its reply is still being produced when the
    # caller speaks over it.
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="3")
    call, conversation_id = await new_call(server, words_per_second=8)
    async with call:
        await verify(call)
        await utter(call, "Look up and compare my charts")
        with anyio.fail_after(10):
            await call.wait_until(lambda: received(call, "in the background"))
        await anyio.sleep(0.1)
        # The caller speaks over the announcement (8 words a second): it is cut.
        asked = await utter(call, "What's my date of birth?")
        # And over the reply that is being looked up.
        await call.speech(SpeechState.STARTED)
        barge_in = len(call.log) - 1
        await anyio.sleep(1.5)
        await call.speech(SpeechState.STOPPED)
        with anyio.fail_after(15):
            found = await call.wait_until(lambda: received(call, "found in Dana's chart"))

    cut = [e for e in call.log if isinstance(e, PlaybackStopped)]
    assert len(cut) == 1
    assert "in the background" in cut[0].cut[0].text
    # That reply never came, nor was it stored: it was abandoned, not held.
    assert not [m for m in call.received if "date of birth" in m.text]
    events = await fetch_events(
        server, service_token(), f"/v1/conversations/{conversation_id}/events"
    )
    assert not [
        e for e in events if e["type"] == "message" and e["seq"] > asked and e["kind"] == "reply"
    ]
    # The background lookup was running when the caller barged in, and finished.
    states = task_states(call.log)
    assert [s for i, s in states if i < barge_in].count("completed") == 0
    assert [s for i, s in states if i > barge_in].count("completed") == 1
    assert found.kind == "followup"
    check_voice_rules(call)


async def test_a_caller_calling_back_hears_the_earlier_call_s_news_only_once_verified(
    server_factory: Any,
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="0.3")
    call, conversation_id = await new_call(server)
    async with call:
        await utter(call, PRIOR_AUTH)
        # Asked who they are before they answer: speaking over a reply still being
        # produced would abandon it (a barge-in), and the request with it.
        await heard(call, "full name and date of birth")
        await verify(call)
        await heard(call, "in the background")
    assert call.ended == 1000
    followup = await stored(server, conversation_id, lambda e: e.get("kind") == "followup")

    # Another call on the same line is another caller, until they too are verified.
    callback = bridge_for(server, conversation_id, resume_after=call.last_seq)
    async with callback:
        update = await callback.wait_until(lambda: received(callback, FOLLOWUP))
        await utter(callback, "How is my prior auth going?")
        await heard(callback, "full name and date of birth")
        await verify(callback)
        status = await heard(callback, "approved")
    # The news of the earlier call reached the bridge, but was not for this caller's
    # ears: it is never spoken. Asked for once verified, it is answered.
    assert update.seq == followup["seq"]
    assert not update.speak
    assert update.seq not in {m.seq for m in callback.heard}
    assert status.seq in {m.seq for m in callback.heard}
    assert status.kind == "reply"
    assert all(m.seq > call.last_seq for m in callback.received)


def test_the_example_call_plays_through_the_command_line(server_factory: Any) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="1")
    script = ROOT / "docs" / "voice" / "prior-auth-call.txt"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridges.voice",
            "--server",
            server.http,
            "--caller",
            CALLER,
            "--script",
            str(script),
            "--wait-timeout",
            "15",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    agent = [line for line in done.stdout.splitlines() if line.startswith("AGENT: ")]
    assert any(FOLLOWUP in line for line in agent), done.stdout
    hint = re.search(r"--conversation-id (\S+) --resume-after (\d+)", done.stderr)
    assert hint is not None
    assert int(hint.group(2)) > 0


async def test_a_restart_mid_call_resumes_where_the_caller_left_off(server_factory: Any) -> None:
    server = server_factory()
    call, _ = await new_call(server)
    async with call:
        await utter(call, "Hello")
        greeting = await heard(call, "How can I help")
        # A deploy: the server closes with 1001; the bridge reconnects and resumes.
        await anyio.to_thread.run_sync(server.stop)
        await anyio.to_thread.run_sync(server.start)
        await utter(call, "What are your opening hours?")
        await heard(call, "Monday to Friday")
    assert [e.code for e in call.log if isinstance(e, Disconnected)] == [1001]
    # Resumed, not replayed: nothing was said twice.
    assert [m.seq for m in call.received].count(greeting.seq) == 1
    assert len({m.seq for m in call.received}) == len(call.received)
    check_voice_rules(call)


async def test_the_bridge_renews_its_service_token_and_the_call_outlives_it(
    shared_servers: Any,
) -> None:
    server = shared_servers()
    conversation_id = (await start_conversation(server, service_token()))["conversation_id"]
    minted: list[str] = []

    async def mint() -> str:
        minted.append(token(BRIDGE_ID, role="service", act_for=CALLER, ttl=3))
        return minted[-1]

    url = conversation_ws(server, conversation_id)
    speaker = PrintingSpeaker(io.StringIO(), 0.0)
    async with VoiceBridge(url, await mint(), speaker=speaker, token_source=mint) as call:
        # Well past the first token's life, and the second's.
        await anyio.sleep(5)
        assert call.ended is None
        await utter(call, "What are your opening hours?")
        await heard(call, "Monday to Friday")
    assert len(minted) >= 3
    # The credential never reaches the call's record.
    assert not [f for _, f in frames(call.log, sent=True) if f.get("type") == "refresh"]
    assert not any(tok in repr(call.log) for tok in minted)


async def test_a_bridge_that_cannot_renew_is_ended_4401_at_expiry(shared_servers: Any) -> None:
    server = shared_servers()
    conversation_id = (await start_conversation(server, service_token()))["conversation_id"]
    short = token(BRIDGE_ID, role="service", act_for=CALLER, ttl=2)
    speaker = PrintingSpeaker(io.StringIO(), 0.0)
    url = conversation_ws(server, conversation_id)
    async with VoiceBridge(url, short, speaker=speaker) as call:
        with anyio.fail_after(6):
            assert await call.wait_ended() == 4401

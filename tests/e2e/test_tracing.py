"""Traces across nodes: a say on one node, its turn and tasks on the home, one trace.

Two real nodes on one PostgreSQL and their own Redis export their spans over OTLP/HTTP
to a receiver the test runs, as a collector would; the person's socket is on the node
that is not the conversation's home, so the say is relayed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from .. import otlp_receiver
from .cluster import cluster, postgres_database, redis_process
from .conftest import conversation_ws, open_wire, start_conversation, token

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.postgres]

__all__ = ["cluster", "postgres_database", "redis_process"]

OUTREACH = "Reach every patient who hasn't completed onboarding"


@pytest.fixture
def receiver() -> Iterator[str]:
    with otlp_receiver.running() as url:
        yield url


async def spans_of(receiver: str, trace_id: str | None = None) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        spans = list((await client.get(f"{receiver}/spans")).json())
    return [s for s in spans if trace_id is None or s["trace_id"] == trace_id]


async def test_a_relayed_say_its_turn_and_its_tasks_are_one_trace(
    cluster: Any, receiver: str
) -> None:
    exporting = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "SWITCHBOARD_TOOL_LATENCY_SCALE": "0.05",
    }
    home, other = cluster(2, **exporting)
    tok = token()
    conv = await start_conversation(home, tok)
    # The home takes the conversation with a first socket; the next socket, on the
    # other node, replaces it there and has its say relayed.
    async with open_wire(conversation_ws(home, conv["conversation_id"]), tok) as first:
        seq = await first.say("What are your opening hours?")
        await first.message(since=seq, role="agent", kind="reply")
        async with open_wire(
            conversation_ws(other, conv["conversation_id"]), tok, resume_after=first.last_seq
        ) as wire:
            assert await first.closed() == 4409
            seq = await wire.say(OUTREACH)
            await wire.message(since=seq, kind="followup", within=30)
            tasks = set(wire.task_ids())
    assert len(tasks) == 3

    with anyio.fail_after(20):
        while True:
            says = [
                s
                for s in await spans_of(receiver)
                if s["name"] == "switchboard.say" and s["node"] == "node-1"
            ]
            if says:
                trace = await spans_of(receiver, says[0]["trace_id"])
                ended = [s for s in trace if s["name"] == "switchboard.task"]
                if len(ended) == 3 and any(s["name"] == "switchboard.turn" for s in trace):
                    break
            await anyio.sleep(0.2)
    (say,) = says
    by_id = {s["span_id"]: s for s in trace}
    (relay,) = [s for s in trace if s["name"] == "switchboard.relay"]
    (turn,) = [s for s in trace if s["name"] == "switchboard.turn"]
    # node-1 took the words; the home, node-0, ran them, answered and started the work.
    assert relay["node"] == "node-0"
    assert relay["parent_span_id"] == say["span_id"]
    assert turn["node"] == "node-0"
    assert turn["parent_span_id"] == relay["span_id"]
    assert {s["attributes"]["switchboard.task"] for s in ended} == tasks
    for task in ended:
        assert by_id[task["parent_span_id"]] is turn
        assert task["attributes"]["switchboard.agent"] == "outreach-caller"
        assert task["attributes"]["switchboard.state"] == "completed"
        assert task["attributes"]["switchboard.depth"] == 1
    # Ids, agents and states only: nothing anyone said, no patient, no exception text.
    everything = json.dumps(await spans_of(receiver))
    for words in ("onboarding", "opening hours", "Alice", "Bob", "Carol"):
        assert words not in everything, words
    assert all(s["events"] == [] for s in await spans_of(receiver))

"""P1: say → reply latency while 100 conversations each run 10 sub-agents that report
progress every second.

Each conversation starts its tickers (``tick 10 1``: one batch of 10 sub-agents, each
reporting progress every second until cancelled) and waits until all of them are
``working``. Then, for the measured window, every conversation says ``echo TOKEN`` at
random moments (uniform gaps averaging ``say_every`` seconds) and times the ``say``
until the agent's reply with that token arrives, and until the ``ack``.

The bench process also times its own event loop (how late a 5 ms sleep wakes up), so
that a late reply can be told apart from a busy client; and the server runs with
``BENCH_GC=1`` (:mod:`bench.gctrace`), so that the window's longest collector pause of
each generation is reported beside the latencies it may explain.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bench.client import ConversationClient, Frame, deadline, wait_until
from bench.harness import ServerProcess, person_token
from bench.scenario import (
    Comparison,
    Metric,
    Metrics,
    Params,
    RunContext,
    Scenario,
    Target,
    percentile,
)
from bench.scenarios.gc_pause import collections_since

SETUP_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 60.0
"""How long after the window the last replies may take; one still missing then is
counted as unanswered, and its latency as at least the window's end."""


@dataclass
class _Conversation:
    client: ConversationClient
    working: set[str] = field(default_factory=set)
    sent: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    replied: dict[str, float] = field(default_factory=dict)
    ack_tokens: dict[str, str] = field(default_factory=dict)
    task_events: int = 0
    errors: int = 0

    def on_frame(self, frame: Frame, at: float) -> None:
        kind = frame.get("type")
        if kind == "task":
            self.task_events += 1
            task = frame["task"]
            if task["state"] == "working":
                self.working.add(task["id"])
        elif kind == "message":
            text = frame.get("text", "")
            if (
                frame.get("role") == "agent"
                and frame.get("kind") == "reply"
                and text[:5] == "echo "
            ):
                self.replied.setdefault(text[5:], at)
        elif kind == "ack":
            token = self.ack_tokens.get(frame["id"])
            if token is not None:
                self.acked.setdefault(token, at)
        elif kind == "error":
            self.errors += 1


async def _open(server: ServerProcess, index: int) -> _Conversation:
    person = f"p1-person-{index}"
    conversation_id, _ = await server.create_conversation(person)
    client = ConversationClient(server.ws, conversation_id, person_token(person))
    await client.open()
    conversation = _Conversation(client)
    client.handler = conversation.on_frame
    return conversation


async def loop_lag(
    samples: list[float], stop: asyncio.Event, stamps: list[float] | None = None
) -> None:
    """Append how late each 5 ms sleep of this process wakes up, in s, until *stop*;
    and to *stamps*, when it did (perf_counter)."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.005)
        woke = time.perf_counter()
        samples.append(woke - before - 0.005)
        if stamps is not None:
            stamps.append(woke)


async def _talk(
    conversation: _Conversation, index: int, end: float, mean_gap: float, rng: random.Random
) -> None:
    n = 0
    while True:
        await asyncio.sleep(rng.uniform(0, 2 * mean_gap))
        if time.perf_counter() >= end:
            return
        token = f"{index}-{n}"
        n += 1
        frame_id, at = await conversation.client.say(f"echo {token}")
        conversation.ack_tokens[frame_id] = token
        conversation.sent[token] = at


async def _measure(
    ctx: RunContext,
    server: ServerProcess,
    p: Params,
    conversations: list[_Conversation],
    rng: random.Random,
) -> tuple[float, int, list[float], float, dict[str, Any]]:
    """Start the tickers, wait until all work, then time the says of the window."""
    count, subagents = len(conversations), int(p["subagents"])
    for c in conversations:
        await c.client.say(f"tick {subagents} {p['interval']}")
    async with deadline(SETUP_TIMEOUT_S, f"{count * subagents} tickers working"):
        await wait_until(lambda: sum(len(c.working) for c in conversations) >= count * subagents)
    ctx.log(f"    {count * subagents} sub-agents working; warming up")
    await asyncio.sleep(float(p["warmup"]))
    lag: list[float] = []
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(loop_lag(lag, stop))
        events_before = sum(c.task_events for c in conversations)
        await collections_since(server)
        started, cpu_started = time.perf_counter(), server.cpu_seconds()
        end = started + float(p["duration"])
        async with ctx.measuring(server, "P1"):
            await asyncio.gather(
                *(
                    _talk(c, i, end, float(p["say_every"]), random.Random(rng.random()))
                    for i, c in enumerate(conversations)
                )
            )
            window = time.perf_counter() - started
            cpu = (server.cpu_seconds() - cpu_started) / window
            events = sum(c.task_events for c in conversations) - events_before
            collections = await collections_since(server)
            stop.set()
    slow = collections["slow"]
    ctx.log(
        "    collections over 2 ms: "
        + (", ".join(f"gen{d['generation']} {d['ms']:.1f}" for d in slow) or "none")
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            await wait_until(lambda: all(len(c.replied) >= len(c.sent) for c in conversations))
    return window, events, lag, cpu, collections


async def run(ctx: RunContext, p: Params, _prepared: object) -> Metrics:
    count = int(p["conversations"])
    rng = random.Random(ctx.run_index)
    async with ctx.server(env={"BENCH_GC": "1"}) as server:
        limit = asyncio.Semaphore(16)

        async def opened(i: int) -> _Conversation:
            async with limit:
                return await _open(server, i)

        conversations = await asyncio.gather(*(opened(i) for i in range(count)))
        async with asyncio.TaskGroup() as tg:
            for c in conversations:
                tg.create_task(c.client.read())
            try:
                window, events, lag, cpu, collections = await _measure(
                    ctx, server, p, conversations, rng
                )
            finally:
                await asyncio.gather(*(c.client.close() for c in conversations))
    given_up = time.perf_counter()
    replies = [c.replied.get(t, given_up) - c.sent[t] for c in conversations for t in c.sent]
    unanswered = sum(1 for c in conversations for t in c.sent if t not in c.replied)
    acks = [c.acked[t] - c.sent[t] for c in conversations for t in c.sent if t in c.acked]
    return {
        "reply_p50_ms": percentile(replies, 50) * 1000,
        "reply_p99_ms": percentile(replies, 99) * 1000,
        "reply_max_ms": max(replies) * 1000,
        "ack_p50_ms": percentile(acks, 50) * 1000,
        "ack_p99_ms": percentile(acks, 99) * 1000,
        "samples": float(len(replies)),
        "unanswered": float(unanswered),
        "task_events_per_s": events / window,
        "client_lag_p99_ms": percentile(lag, 99) * 1000,
        "server_cpu_percent": cpu * 100,
        "errors": float(sum(c.errors for c in conversations)),
        **{
            f"gc{g}_longest_ms": float(generation["longest_ms"])
            for g, generation in enumerate(collections["generations"])
        },
        "gc2_collections": float(collections["generations"][2]["collections"]),
        "gc_slow_collections": float(len(collections["slow"])),
        "gc_ms_per_s": sum(g["total_ms"] for g in collections["generations"]) / window,
    }


SCENARIO = Scenario(
    id="P1",
    title="say → reply latency under 100 conversations × 10 sub-agents reporting progress 1/s",
    metrics=(
        Metric("reply_p50_ms", "ms", "say → the agent's reply, median"),
        Metric("reply_p99_ms", "ms", "say → the agent's reply, 99th percentile"),
        Metric("reply_max_ms", "ms", "say → the agent's reply, slowest"),
        Metric("ack_p50_ms", "ms", "say → ack, median"),
        Metric("ack_p99_ms", "ms", "say → ack, 99th percentile"),
        Metric("samples", "", "says timed"),
        Metric("unanswered", "", f"says with no reply {DRAIN_TIMEOUT_S:g} s after the window"),
        Metric("task_events_per_s", "/s", "task events the clients received (the load)"),
        Metric("server_cpu_percent", "%", "server CPU in the window, all threads (100 = a core)"),
        Metric("client_lag_p99_ms", "ms", "the bench's own event-loop lag, 99th percentile"),
        Metric("errors", "", "error frames received"),
        Metric("gc0_longest_ms", "ms", "the server's longest young collection in the window"),
        Metric("gc1_longest_ms", "ms", "the server's longest middle-generation collection"),
        Metric("gc2_longest_ms", "ms", "the server's longest full collection in the window"),
        Metric("gc2_collections", "", "full collections in the window"),
        Metric("gc_slow_collections", "", "collections of any generation longer than 2 ms"),
        Metric("gc_ms_per_s", "ms", "the server's time in the collector, per second of window"),
    ),
    target=Target("reply_p99_ms", Comparison.BELOW, 25.0),
    full={
        "conversations": 100,
        "subagents": 10,
        "interval": 1.0,
        "warmup": 3.0,
        "duration": 20.0,
        "say_every": 2.0,
    },
    quick={
        "conversations": 20,
        "subagents": 10,
        "interval": 1.0,
        "warmup": 1.0,
        "duration": 4.0,
        "say_every": 1.0,
    },
    run=run,
)

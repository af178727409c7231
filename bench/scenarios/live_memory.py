"""P10: what a live conversation holds after 1,000 tasks, over one that ran none.

The server runs with tracemalloc (``BENCH_TRACE_MEMORY``); ``GET /bench/heap``
collects garbage and reads the traced Python heap (:mod:`bench.memtrace`). Every
conversation below keeps its socket open, so it stays live (loaded, never idle) to
the end. Each step is one or more ``fanout B`` (B workers that finish at once, then
one roll-up), each waited for until its roll-up arrives.

1. A first conversation runs a few fan-outs, so that what the process fills once —
   imports, caches, pools, the first socket — is in place. Heap read: *h0*.
2. The baseline conversation is created and runs one fan-out. Heap: *h1*.
3. The measured conversation is created and runs one fan-out, as the baseline did
   (heap *h2*), then 1,000 tasks more, in fan-outs of B. Heap: *h3*.

The figure is what the measured conversation holds over the baseline: (*h3* − *h1*) −
(*h1* − *h0*), in KiB. The same step taken twice, (*h2* − *h1*) − (*h1* − *h0*), is
reported as the noise of the method. A server that lets ended tasks go holds nearly
nothing more for 1,000 tasks than for none; one that keeps them shows their cost.
The tasks each runtime still knows are read too, and with ``owners`` > 0 (and enough
``frames`` per allocation) the owners — innermost project line — of what grew most
while the 1,000 ran are logged.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from bench.client import ConversationClient, Frame, deadline, wait_until
from bench.harness import ServerProcess, http_json, person_token
from bench.scenario import Comparison, Metric, Metrics, Params, RunContext, Scenario, Target
from bench.server import CONVERSATION_PATH, HEAP_PATH

ROLLUP_TIMEOUT_S = 60.0
HEAP_TIMEOUT_S = 300.0
"""A snapshot of a traced heap grouped by owner takes seconds."""


@dataclass
class _Conversation:
    conversation_id: str
    client: ConversationClient
    rollups: int = 0
    errors: int = 0

    def on_frame(self, frame: Frame, at: float) -> None:
        if frame.get("type") == "message" and frame.get("kind") == "followup":
            self.rollups += 1
        elif frame.get("type") == "error":
            self.errors += 1

    async def fan_out(self, batch: int, times: int) -> None:
        """*times* fan-outs of *batch* workers, one after another, each to its roll-up."""
        for _ in range(times):
            done = self.rollups + 1
            await self.client.say(f"fanout {batch}")
            async with deadline(ROLLUP_TIMEOUT_S, f"the roll-up of fanout {batch}"):
                await wait_until(functools.partial(self._rolled_up, done))

    def _rolled_up(self, count: int) -> bool:
        return self.rollups >= count or self.client.closed_with is not None


async def _heap(server: ServerProcess, owners: int) -> dict[str, Any]:
    status, body = await http_json(
        "GET", f"{server.http}{HEAP_PATH}?top={owners}", read_timeout=HEAP_TIMEOUT_S
    )
    if status != 200:
        raise RuntimeError(f"GET {HEAP_PATH} answered {status}: is BENCH_TRACE_MEMORY set?")
    return dict(body)


async def _held(server: ServerProcess, conversation_id: str) -> dict[str, Any]:
    path = CONVERSATION_PATH.replace("{conversation_id}", conversation_id)
    _, body = await http_json("GET", server.http + path)
    return dict(body) if isinstance(body, dict) else {}


async def run(ctx: RunContext, p: Params, _prepared: object) -> Metrics:
    batch, tasks, owners = int(p["batch"]), int(p["tasks"]), int(p["owners"])
    if tasks % batch:
        raise ValueError(f"tasks ({tasks}) must be a multiple of batch ({batch})")
    env = {"BENCH_TRACE_MEMORY": str(p["frames"])}
    async with ctx.server(env=env) as server, asyncio.TaskGroup() as tg:
        conversations: list[_Conversation] = []

        async def opened(person: str) -> _Conversation:
            conversation_id, _ = await server.create_conversation(person)
            client = ConversationClient(server.ws, conversation_id, person_token(person))
            await client.open()
            conversation = _Conversation(conversation_id, client)
            client.handler = conversation.on_frame
            tg.create_task(client.read())
            conversations.append(conversation)
            return conversation

        try:
            warm = await opened("p10-warm")
            await warm.fan_out(batch, int(p["warmup"]))
            # Each read keeps the previous one's totals per owner: the first read, with
            # none kept yet, is not comparable to the others.
            await _heap(server, owners)
            h0 = await _heap(server, owners)
            baseline = await opened("p10-baseline")
            await baseline.fan_out(batch, 1)
            h1 = await _heap(server, owners)
            measured = await opened("p10-measured")
            await measured.fan_out(batch, 1)
            h2 = await _heap(server, owners)
            async with ctx.measuring(server, "P10"):
                await measured.fan_out(batch, tasks // batch)
            h3 = await _heap(server, owners)
            held = await _held(server, measured.conversation_id)
            held_baseline = await _held(server, baseline.conversation_id)
            alive = all(c.client.closed_with is None for c in conversations)
        finally:
            for c in conversations:
                await c.client.close()
    if not alive:
        raise RuntimeError("a socket closed before the end")
    for key, size, objects in h3["owners"]:
        ctx.log(f"    {size / 1024:9.1f} KiB {objects:7d} objs  {key}")

    def grew(a: dict[str, Any], b: dict[str, Any]) -> float:
        return float(b["traced_bytes"] - a["traced_bytes"])

    conversation = grew(h0, h1)
    metrics = {
        "kib_held": (grew(h1, h3) - conversation) / 1024,
        "bytes_per_task": grew(h2, h3) / tasks,
        "noise_kib": (grew(h1, h2) - conversation) / 1024,
        "conversation_kib": conversation / 1024,
        "traced_mib": h3["traced_bytes"] / 2**20,
        "errors": float(sum(c.errors for c in conversations)),
    }
    for name, source in (("known_tasks", held), ("baseline_known_tasks", held_baseline)):
        if isinstance(source.get("known_tasks"), int):
            metrics[name] = float(source["known_tasks"])
    return metrics


SCENARIO = Scenario(
    id="P10",
    title="memory a live conversation holds after 1,000 tasks, over one with none",
    metrics=(
        Metric("kib_held", "KiB", "traced heap: measured conversation − baseline one"),
        Metric("bytes_per_task", "B", "traced heap grown per task while the 1,000 ran"),
        Metric("noise_kib", "KiB", "the same step taken twice: the method's noise"),
        Metric("conversation_kib", "KiB", "traced heap of a live conversation, one fan-out"),
        Metric("traced_mib", "MiB", "the server's traced heap at the end"),
        Metric("known_tasks", "", "tasks the measured conversation's runtime still holds"),
        Metric("baseline_known_tasks", "", "tasks the baseline's runtime still holds"),
        Metric("errors", "", "error frames received"),
    ),
    target=Target("kib_held", Comparison.BELOW, 100.0),
    full={"tasks": 1000, "batch": 10, "warmup": 5, "frames": 16, "owners": 12},
    quick={"tasks": 100, "batch": 10, "warmup": 2, "frames": 1, "owners": 0},
    run=run,
)

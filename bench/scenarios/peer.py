"""P7: chat says per second, Switchboard beside the Django Channels peer, same driver.

Two servers, one after the other in the same run, each fresh: the Switchboard bench
server (SQLite, the in-process bus) and the Channels peer (``bench/peers/channels/``:
Django's ORM on SQLite, channels_redis on a Redis of its own; ``layer`` is its Pub/Sub
layer by default, the faster of its two here, or ``core``). Both speak the same
subset of the protocol to the same clients. ``conversations`` sockets, one conversation
each, run closed loops: say ``echo TOKEN``, wait for its ``ack`` and for the agent's
reply (stored, then delivered), say the next. After ``warmup`` seconds the window of
``duration`` seconds counts the says whose reply arrived in it.

``rounds`` measures each server that many times per run, alternating which goes first,
so that a change in the machine's other load falls on both. Figures per server: says/s,
server CPU per say (the peer's Redis counted apart, and in its total), say → reply p50
and p99, and the bench's own CPU (a driver near 100 % would be the limit, not the
server). The target is Switchboard's says/s ÷ the peer's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import ConversationClient, Frame, next_id
from bench.harness import ServerProcess, person_token
from bench.peers.channels_peer import channels_peer, channels_python
from bench.peers.redis import RedisServer
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

ANSWER_TIMEOUT_S = 10.0
SERVERS = ("switchboard", "channels")


@dataclass
class _Loop:
    """One conversation's closed loop: the say in flight and what came back for it."""

    client: ConversationClient
    waiting: str = ""
    expected: str = ""
    acked: bool = False
    replied_at: float | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    errors: int = 0

    def on_frame(self, frame: Frame, at: float) -> None:
        kind = frame.get("type")
        if kind == "ack" and frame.get("id") == self.waiting:
            self.acked = True
        elif (
            kind == "message"
            and frame.get("role") == "agent"
            and frame.get("text") == self.expected
            and self.replied_at is None
        ):
            self.replied_at = at
        elif kind == "error":
            self.errors += 1
            self.answered.set()
        if self.acked and self.replied_at is not None:
            self.answered.set()


@dataclass
class _Tally:
    """One server's figures over one window."""

    seconds: float
    says: int = 0
    sent: int = 0
    answered: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    redis_cpu: float = 0.0
    driver_cpu: float = 0.0


async def _drive(
    ctx: RunContext, server: ServerProcess, p: Params, label: str, redis: RedisServer | None
) -> _Tally:
    loops = []
    for i in range(int(p["conversations"])):
        person = f"p7-person-{i}"
        conversation_id, _ = await server.create_conversation(person)
        client = ConversationClient(server.ws, conversation_id, person_token(person))
        await client.open()
        loop = _Loop(client)
        client.handler = loop.on_frame
        loops.append(loop)
    started = time.perf_counter()
    opens, ends = started + float(p["warmup"]), started + float(p["warmup"]) + float(p["duration"])
    tally = _Tally(seconds=ends - opens)

    async def run_loop(i: int, loop: _Loop) -> None:
        n = 0
        while time.perf_counter() < ends:
            n += 1
            loop.waiting, loop.expected = next_id(), f"echo {i}-{n}"
            loop.acked, loop.replied_at = False, None
            loop.answered.clear()
            sent_at = await loop.client.send(
                {"type": "say", "id": loop.waiting, "text": loop.expected}
            )
            tally.sent += 1
            try:
                async with asyncio.timeout(ANSWER_TIMEOUT_S):
                    await loop.answered.wait()
            except TimeoutError:
                return  # unanswered: sent - answered says so, and this loop stops
            if loop.replied_at is None:
                return  # an error frame answered it
            tally.answered += 1
            if opens <= sent_at and loop.replied_at < ends:
                tally.says += 1
                tally.latencies.append(loop.replied_at - sent_at)

    async def read_cpu() -> None:
        # CPU over exactly the window: read when it opens and when it ends.
        await asyncio.sleep(max(0.0, opens - time.perf_counter()))
        cpu = server.cpu_seconds(), redis.cpu_seconds() if redis else 0.0, time.process_time()
        await asyncio.sleep(max(0.0, ends - time.perf_counter()))
        tally.server_cpu = server.cpu_seconds() - cpu[0]
        tally.redis_cpu = (redis.cpu_seconds() - cpu[1]) if redis else 0.0
        tally.driver_cpu = time.process_time() - cpu[2]

    async with asyncio.TaskGroup() as tg:
        for loop in loops:
            tg.create_task(loop.client.read())
        try:
            async with ctx.measuring(server, label):
                await asyncio.gather(read_cpu(), *(run_loop(i, lp) for i, lp in enumerate(loops)))
        finally:
            await asyncio.gather(*(loop.client.close() for loop in loops))
    tally.errors = sum(loop.errors for loop in loops)
    return tally


def _figures(name: str, tallies: Sequence[_Tally]) -> Metrics:
    seconds = sum(t.seconds for t in tallies)
    says = sum(t.says for t in tallies)
    latencies = [x for t in tallies for x in t.latencies]
    server_cpu = sum(t.server_cpu for t in tallies)
    figures = {
        f"{name}_says_per_s": says / seconds,
        f"{name}_cpu_ms_per_say": server_cpu / says * 1000 if says else 0.0,
        f"{name}_cpu_percent": server_cpu / seconds * 100,
        f"{name}_driver_cpu_percent": sum(t.driver_cpu for t in tallies) / seconds * 100,
        f"{name}_reply_p50_ms": percentile(latencies, 50) * 1000,
        f"{name}_reply_p99_ms": percentile(latencies, 99) * 1000,
        f"{name}_says_sent": float(sum(t.sent for t in tallies)),
        f"{name}_unanswered": float(sum(t.sent - t.answered for t in tallies)),
        f"{name}_errors": float(sum(t.errors for t in tallies)),
    }
    if name == "channels":
        redis_cpu = sum(t.redis_cpu for t in tallies)
        figures["channels_redis_cpu_ms_per_say"] = redis_cpu / says * 1000 if says else 0.0
        figures["channels_total_cpu_ms_per_say"] = (
            (server_cpu + redis_cpu) / says * 1000 if says else 0.0
        )
    return figures


async def prepare(_workdir: Path, _p: Params) -> Path:
    """The peer's venv (created on first use: needs PyPI); its interpreter."""
    return await channels_python()


async def run(ctx: RunContext, p: Params, python: Path) -> Metrics:
    tallies: dict[str, list[_Tally]] = {name: [] for name in SERVERS}
    for round_index in range(int(p["rounds"])):
        flip = (ctx.run_index + round_index) % 2 == 1
        for name in reversed(SERVERS) if flip else SERVERS:
            label = f"P7-{name}-{round_index}"
            if name == "switchboard":
                async with ctx.server() as server:
                    tallies[name].append(await _drive(ctx, server, p, label, None))
            else:
                async with channels_peer(ctx, python, str(p["layer"])) as peer:
                    tallies[name].append(await _drive(ctx, peer.server, p, label, peer.redis))
    metrics = {k: v for name in SERVERS for k, v in _figures(name, tallies[name]).items()}
    peer_rate = metrics["channels_says_per_s"]
    return {
        "ratio": metrics["switchboard_says_per_s"] / peer_rate if peer_rate else 0.0,
        **metrics,
    }


def _metrics() -> tuple[Metric, ...]:
    per_server: list[Metric] = []
    for name, title in (("switchboard", "Switchboard"), ("channels", "the Channels peer")):
        per_server += [
            Metric(f"{name}_says_per_s", "/s", f"{title}: says answered (ack + reply) per second"),
            Metric(f"{name}_cpu_ms_per_say", "ms", f"{title}: server process CPU per say"),
            Metric(f"{name}_cpu_percent", "%", f"{title}: server process CPU (100 = a core)"),
            Metric(f"{name}_driver_cpu_percent", "%", f"{title}: the bench's own CPU, driving it"),
            Metric(f"{name}_reply_p50_ms", "ms", f"{title}: say → the agent's reply, p50"),
            Metric(f"{name}_reply_p99_ms", "ms", f"{title}: say → the agent's reply, p99"),
            Metric(f"{name}_says_sent", "", f"{title}: says sent, warm-up and tail included"),
            Metric(f"{name}_unanswered", "", f"{title}: says without ack and reply in 10 s"),
            Metric(f"{name}_errors", "", f"{title}: error frames received"),
        ]
    return (
        Metric("ratio", "", "Switchboard's says/s ÷ the Channels peer's, same driver, same run"),
        *per_server,
        Metric("channels_redis_cpu_ms_per_say", "ms", "the peer's Redis: CPU per say"),
        Metric("channels_total_cpu_ms_per_say", "ms", "the peer and its Redis: CPU per say"),
    )


SCENARIO = Scenario(
    id="P7",
    title="chat says/s in closed loops, Switchboard vs. a Django Channels peer",
    metrics=_metrics(),
    target=Target("ratio", Comparison.AT_LEAST, 4.0),
    full={"conversations": 100, "rounds": 2, "warmup": 2.0, "duration": 10.0, "layer": "pubsub"},
    quick={"conversations": 8, "rounds": 1, "warmup": 0.5, "duration": 2.0, "layer": "pubsub"},
    run=run,
    prepare=prepare,
)

"""``python -m bench.cluster_load``: say → reply with the socket on the home vs on another
node, under P1's kind of load spread over three nodes.

::

    python -m bench.cluster_load [--runs N] [--conversations N] [--subagents N]
                                 [--duration S] [--json PATH]

Each run starts its own ``redis-server`` and PostgreSQL database and three
``python -m bench.server`` nodes (the bench workspace, :mod:`bench.workspace`). Each
conversation is created and first opened on node ``i % 3``, which becomes its home,
and starts ``tick SUBAGENTS 1`` (sub-agents reporting progress every second). Then
every other conversation's socket moves to the next node (the home keeps it: every
command from that socket is relayed through Redis, every event comes back over it).
For the measured window each conversation says ``echo TOKEN`` at random gaps
averaging 2 s and times it until the reply; the two groups are measured in the same
window, so their ratio is the relay's cost under load. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import ConversationClient, Frame, deadline, wait_until
from bench.failover import _start_cluster, report
from bench.harness import BENCH_ENV, http_json, person_token
from bench.scenario import percentile

SETUP_TIMEOUT_S = 120.0


@dataclass
class _Talk:
    index: int
    conversation_id: str
    client: ConversationClient
    relayed: bool = False
    working: set[str] = field(default_factory=set)
    sent: dict[str, float] = field(default_factory=dict)
    replied: dict[str, float] = field(default_factory=dict)

    def on_frame(self, frame: Frame, at: float) -> None:
        if frame.get("type") == "task" and frame["task"]["state"] == "working":
            self.working.add(frame["task"]["id"])
        elif frame.get("type") == "message" and frame.get("role") == "agent":
            text = str(frame.get("text", ""))
            if text.startswith("echo "):
                self.replied.setdefault(text[5:], at)


async def _talk(talk: _Talk, end: float, rng: random.Random) -> None:
    n = 0
    while True:
        await asyncio.sleep(rng.uniform(0, 4.0))
        if time.perf_counter() >= end:
            return
        token = f"{talk.index}-{n}"
        n += 1
        _, at = await talk.client.say(f"echo {token}")
        talk.sent[token] = at


async def _open(ws: str, conversation_id: str, person: str, talk: _Talk | None) -> _Talk:
    client = ConversationClient(ws, conversation_id, person_token(person))
    await client.open(resume_after=0)
    if talk is None:
        talk = _Talk(0, conversation_id, client)
    talk.client = client
    client.handler = talk.on_frame
    return talk


async def one_run(p: argparse.Namespace) -> dict[str, float]:
    cluster = await asyncio.to_thread(
        _start_cluster,
        5.0,
        ("load-a", "load-b", "load-c"),
        ("bench.server",),
        dict(BENCH_ENV),
    )
    readers: list[asyncio.Task[None]] = []
    try:
        ports = [port for _, port in cluster.nodes]
        ws = [f"ws://127.0.0.1:{port}" for port in ports]
        talks: list[_Talk] = []
        for i in range(p.conversations):
            person = f"load-{i}"
            status, body = await http_json(
                "POST",
                f"http://127.0.0.1:{ports[i % 3]}/v1/conversations",
                {},
                token=person_token(person),
            )
            if status != 201:
                raise RuntimeError(f"POST /v1/conversations answered {status}")
            talk = await _open(ws[i % 3], str(body["conversation_id"]), person, None)
            talk.index = i
            talks.append(talk)
            readers.append(asyncio.create_task(talk.client.read()))
            await talk.client.say(f"tick {p.subagents} 1")
        async with deadline(SETUP_TIMEOUT_S, "every ticker working"):
            await wait_until(lambda: all(len(t.working) >= p.subagents for t in talks))
        # Every other conversation's socket moves to the next node (4409 for the old one).
        for talk in talks[1::2]:
            old = talk.client
            talk.working = set()
            await _open(ws[(talk.index + 1) % 3], talk.conversation_id, f"load-{talk.index}", talk)
            talk.relayed = True
            readers.append(asyncio.create_task(talk.client.read()))
            await old.close()
        await asyncio.sleep(p.warmup)
        rng = random.Random(7)
        started = time.perf_counter()
        end = started + p.duration
        await asyncio.gather(*(_talk(t, end, random.Random(rng.random())) for t in talks))
        # A reply still missing a minute after the window counts as unanswered.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await wait_until(lambda: all(len(t.replied) >= len(t.sent) for t in talks))
        home: list[float] = []
        relayed: list[float] = []
        missing = 0
        for talk in talks:
            for token, at in talk.sent.items():
                reply = talk.replied.get(token)
                if reply is None:
                    missing += 1
                    continue
                (relayed if talk.relayed else home).append((reply - at) * 1000)
        return {
            "home_p50_ms": percentile(home, 50),
            "home_p99_ms": percentile(home, 99),
            "relayed_p50_ms": percentile(relayed, 50),
            "relayed_p99_ms": percentile(relayed, 99),
            "relayed_over_home_p99": percentile(relayed, 99) / percentile(home, 99),
            "says": float(len(home) + len(relayed)),
            "unanswered": float(missing),
            "progress_per_s": float(p.conversations * p.subagents),
        }
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.to_thread(cluster.stop)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_load")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--subagents", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    runs = [await one_run(args) for _ in range(args.runs)]
    about = {"nodes": 3, "conversations": args.conversations, "subagents": args.subagents}
    report(about, runs, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""P6: resume after missing 10,000 events.

The database is seeded (once, then copied for each run) with one conversation whose
chat holds 10,000 messages, committed through the store in batches of 1,000 before
the server starts. A client connects with ``resume_after: 0``; the figure is the time
from ``welcome`` to the last replayed event (``seq`` 10,000). The client only counts
frames while they arrive and parses the last, so that its own JSON work stays out of
the figure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.client import ConversationClient
from bench.harness import copy_database, person_token
from bench.scenario import Comparison, Metric, Metrics, Params, RunContext, Scenario, Target
from bench.seed import SeededConversation, open_store, seed_conversations, seed_events


async def prepare(workdir: Path, p: Params) -> tuple[Path, SeededConversation]:
    database = workdir / "p6-template.db"
    store = await open_store(database)
    try:
        (seeded,) = await seed_conversations(store, 1, person_prefix="p6-person")
        await seed_events(store, seeded.chat_id, int(p["events"]))
    finally:
        await store.close()
    return database, seeded


async def run(ctx: RunContext, p: Params, prepared: tuple[Path, SeededConversation]) -> Metrics:
    template, seeded = prepared
    expected = int(p["events"])
    database = ctx.path("p6.db")
    copy_database(template, database)
    async with ctx.server(database) as server:
        client = ConversationClient(server.ws, seeded.conversation_id, person_token(seeded.person))
        async with ctx.measuring(server, "P6"):
            hello_at = time.perf_counter()
            cpu_before = server.cpu_seconds()
            welcome_at = await client.open(resume_after=0)
            assert client.ws is not None
            received, last = 0, b""
            async for raw in client.ws:
                received += 1
                if received == expected:
                    last_at = time.perf_counter()
                    cpu_after = server.cpu_seconds()
                    last = raw if isinstance(raw, bytes) else raw.encode()
                    break
        await client.close()
    if received != expected:
        raise RuntimeError(f"the socket closed after {received} of {expected} events")
    frame = json.loads(last)
    if frame.get("seq") != expected or client.welcome.get("last_seq") != expected:
        raise RuntimeError(f"the last event has seq {frame.get('seq')}, not {expected}")
    return {
        "replay_ms": (last_at - welcome_at) * 1000,
        "connect_to_welcome_ms": (welcome_at - hello_at) * 1000,
        "events_per_s": expected / (last_at - welcome_at),
        "server_cpu_ms": (cpu_after - cpu_before) * 1000,
    }


SCENARIO = Scenario(
    id="P6",
    title="resume after missing 10,000 events: replay them all",
    metrics=(
        Metric("replay_ms", "ms", "welcome → the last replayed event received"),
        Metric("connect_to_welcome_ms", "ms", "connect, upgrade, hello → welcome"),
        Metric("events_per_s", "/s", "replayed events per second"),
        Metric("server_cpu_ms", "ms", "server CPU from hello to the last event (all threads)"),
    ),
    target=Target("replay_ms", Comparison.BELOW, 150.0),
    full={"events": 10_000},
    quick={"events": 10_000},
    run=run,
    prepare=prepare,
)

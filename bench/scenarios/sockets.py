"""P5: idle authenticated sockets held by one server process, and memory per socket.

The database is seeded (once, then copied for each run) with one conversation per
socket, each of its own person: the server allows one live socket per conversation
and 20 per person. Each run starts a fresh server, opens and closes a few sockets to
warm it up, reads its ``VmRSS`` from ``/proc/<pid>/status``, then opens every socket —
``hello`` sent, ``welcome`` received — holds them idle, and reads ``VmRSS`` again.
Memory per socket is the difference divided by the sockets. While they sit idle the
server's CPU time (``/proc/<pid>/stat``) is read too: idle sockets should cost none.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.client import ConversationClient
from bench.harness import copy_database, person_token
from bench.scenario import Comparison, Metric, Metrics, Params, RunContext, Scenario, Target
from bench.seed import SeededConversation, open_store, seed_conversations
from bench.server import raise_fd_limit

WARMUP_SOCKETS = 20
CONNECTING_AT_ONCE = 100


async def prepare(workdir: Path, p: Params) -> tuple[Path, list[SeededConversation]]:
    database = workdir / "p5-template.db"
    store = await open_store(database)
    try:
        seeded = await seed_conversations(
            store, int(p["sockets"]) + WARMUP_SOCKETS, person_prefix="p5-person"
        )
    finally:
        await store.close()
    return database, seeded


async def open_all(ws_base: str, seeded: list[SeededConversation]) -> list[ConversationClient]:
    limit = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def opened(s: SeededConversation) -> ConversationClient:
        async with limit:
            client = ConversationClient(ws_base, s.conversation_id, person_token(s.person))
            await client.open()
            return client

    return list(await asyncio.gather(*(opened(s) for s in seeded)))


async def close_all(clients: list[ConversationClient]) -> None:
    limit = asyncio.Semaphore(CONNECTING_AT_ONCE * 5)

    async def closed(client: ConversationClient) -> None:
        async with limit:
            await client.close()

    await asyncio.gather(*(closed(c) for c in clients))


async def run(
    ctx: RunContext, p: Params, prepared: tuple[Path, list[SeededConversation]]
) -> Metrics:
    template, seeded = prepared
    count, settle = int(p["sockets"]), float(p["settle"])
    limit = raise_fd_limit()
    if limit < count + 256:
        raise RuntimeError(f"the open-file limit is {limit}: too low for {count} sockets")
    database = ctx.path("p5.db")
    copy_database(template, database)
    async with ctx.server(database) as server:
        warm = await open_all(server.ws, seeded[count:])
        await close_all(warm)
        await asyncio.sleep(settle)
        before = server.rss_kib()
        async with ctx.measuring(server, "P5"):
            started, cpu_started = time.perf_counter(), server.cpu_seconds()
            clients = await open_all(server.ws, seeded[:count])
            opened_in = time.perf_counter() - started
            open_cpu = server.cpu_seconds() - cpu_started
            try:
                await asyncio.sleep(settle)
                cpu_before, idle_started = server.cpu_seconds(), time.perf_counter()
                await asyncio.sleep(settle)
                idle_cpu = (server.cpu_seconds() - cpu_before) / (
                    time.perf_counter() - idle_started
                )
                after = server.rss_kib()
                alive = sum(1 for c in clients if c.ws is not None and c.ws.close_code is None)
            finally:
                await close_all(clients)
    if alive != count:
        raise RuntimeError(f"only {alive} of {count} sockets stayed open")
    return {
        "sockets": float(alive),
        "kib_per_socket": (after - before) / count,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "open_per_s": count / opened_in,
        "server_cpu_ms_per_open": open_cpu / count * 1000,
        "idle_cpu_percent": idle_cpu * 100,
    }


SCENARIO = Scenario(
    id="P5",
    title="idle authenticated sockets in one process, memory per socket",
    metrics=(
        Metric("sockets", "", "sockets open (hello → welcome) and held"),
        Metric("kib_per_socket", "KiB", "server VmRSS delta ÷ sockets"),
        Metric("rss_before_mib", "MiB", "server VmRSS before"),
        Metric("rss_after_mib", "MiB", "server VmRSS with every socket open"),
        Metric("open_per_s", "/s", "sockets opened per second (100 at a time)"),
        Metric("server_cpu_ms_per_open", "ms", "server CPU time per socket opened"),
        Metric("idle_cpu_percent", "%", "server CPU while every socket is idle"),
    ),
    target=Target("kib_per_socket", Comparison.AT_MOST, 30.0),
    full={"sockets": 10_000, "settle": 2.0},
    quick={"sockets": 1_000, "settle": 1.0},
    run=run,
    prepare=prepare,
)

"""P9: the server's full garbage-collection pause with 10,000 sockets open.

The database is seeded (once, then copied for each run) with one conversation per
socket, as for P5. The server runs with ``BENCH_GC=1``: a :data:`gc.callbacks` hook
times every collection, read at ``GET /bench/gc`` (:mod:`bench.gctrace`). Each run
opens and closes a few sockets to warm the server up, forces one full collection and
reads how many objects the collector tracks; then it opens every socket (``hello``
sent, ``welcome`` received, 100 at a time), lets the server settle, and watches a
window with every socket idle: the full (generation 2) collections the server runs by
itself in it. Then it forces a few full collections, one at a time, each in the
server's event loop (``POST /bench/gc/collect``), as an automatic one would run.

The figure is the longest full-collection pause of the idle window and the forced
ones, each timed inside the server; the median is reported beside it. Whatever the
server does about its collector — thresholds, :func:`gc.freeze` after start-up — the
pause is what the process takes. The full collections run while the sockets were
being opened are reported apart: that is where a growing heap is collected.

The node freezes what each full collection leaves (:mod:`server.collector`), so a full
collection walks only what is new; once what is frozen has grown by a quarter since the
last walk (considered every ``SWITCHBOARD_GC_FULL_WALK_SECONDS``), it walks the whole
heap instead. That walk is timed too, once per run after the forced collections (``POST
/bench/gc/walk``): ``heap_walk_ms`` is the pause a full collection would take without
the freezing, and the one the node takes when its heap has grown.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from bench.gctrace import COLLECT_PATH, GC_PATH, WALK_PATH
from bench.harness import ServerProcess, copy_database, http_json
from bench.scenario import Comparison, Metric, Metrics, Params, RunContext, Scenario, Target
from bench.scenarios.sockets import close_all, open_all
from bench.seed import SeededConversation, open_store, seed_conversations
from bench.server import raise_fd_limit

WARMUP_SOCKETS = 20
READ_TIMEOUT_S = 120.0
"""``len(gc.get_objects())`` and a full collection of a large heap take a while."""


async def prepare(workdir: Path, p: Params) -> tuple[Path, list[SeededConversation]]:
    database = workdir / "p9-template.db"
    store = await open_store(database)
    try:
        seeded = await seed_conversations(
            store, int(p["sockets"]) + WARMUP_SOCKETS, person_prefix="p9-person"
        )
    finally:
        await store.close()
    return database, seeded


async def collections_since(server: ServerProcess) -> dict[str, Any]:
    """The collections since the last read, and the collector's state now."""
    status, body = await http_json("GET", server.http + GC_PATH, read_timeout=READ_TIMEOUT_S)
    if status != 200:
        raise RuntimeError(f"GET {GC_PATH} answered {status}: is BENCH_GC set?")
    return dict(body)


async def _force(server: ServerProcess, path: str = COLLECT_PATH) -> float:
    """One full collection (or *path*'s walk) in the server's event loop; its ms."""
    status, body = await http_json("POST", server.http + path, read_timeout=READ_TIMEOUT_S)
    if status != 200:
        raise RuntimeError(f"POST {path} answered {status}")
    return float(body["ms"])


async def run(
    ctx: RunContext, p: Params, prepared: tuple[Path, list[SeededConversation]]
) -> Metrics:
    template, seeded = prepared
    count, settle, idle = int(p["sockets"]), float(p["settle"]), float(p["idle"])
    limit = raise_fd_limit()
    if limit < count + 256:
        raise RuntimeError(f"the open-file limit is {limit}: too low for {count} sockets")
    database = ctx.path("p9.db")
    copy_database(template, database)
    async with ctx.server(database, env={"BENCH_GC": "1"}) as server:
        await close_all(await open_all(server.ws, seeded[count:]))
        await asyncio.sleep(settle)
        await _force(server)
        before = await collections_since(server)
        clients = await open_all(server.ws, seeded[:count])
        try:
            opening = await collections_since(server)
            await asyncio.sleep(settle)
            await collections_since(server)
            async with ctx.measuring(server, "P9"):
                await asyncio.sleep(idle)
                window = await collections_since(server)
                forced = []
                for _ in range(int(p["forced"])):
                    forced.append(await _force(server))
                    await asyncio.sleep(0.2)
            after = await collections_since(server)
            # The node's walk of everything, frozen or not: its one long pause.
            walk = await _force(server, WALK_PATH)
            alive = sum(1 for c in clients if c.ws is not None and c.ws.close_code is None)
        finally:
            await close_all(clients)
    if alive != count:
        raise RuntimeError(f"only {alive} of {count} sockets stayed open")
    pauses = [*window["full_ms"], *forced]
    tracked_before, tracked_after = sum(before["tracked"]), sum(after["tracked"])
    return {
        "full_pause_max_ms": max(pauses),
        "full_pause_p50_ms": statistics.median(pauses),
        "forced_max_ms": max(forced),
        "idle_full_collections": float(len(window["full_ms"])),
        "idle_young_collections": float(sum(g["collections"] for g in window["generations"][:2])),
        "opening_full_collections": float(len(opening["full_ms"])),
        "opening_full_max_ms": max(opening["full_ms"], default=0.0),
        "tracked_objects": float(tracked_after),
        "tracked_per_socket": (tracked_after - tracked_before) / count,
        "frozen_objects": float(after["frozen"]),
        "frozen_per_socket": (after["frozen"] - before["frozen"]) / count,
        "heap_walk_ms": walk,
        "sockets": float(alive),
    }


SCENARIO = Scenario(
    id="P9",
    title="full garbage-collection pause with 10,000 sockets open",
    metrics=(
        Metric("full_pause_max_ms", "ms", "longest generation-2 pause: idle window and forced"),
        Metric("full_pause_p50_ms", "ms", "median generation-2 pause: idle window and forced"),
        Metric("forced_max_ms", "ms", "longest forced gc.collect() in the event loop"),
        Metric("idle_full_collections", "", "automatic full collections in the idle window"),
        Metric("idle_young_collections", "", "generation 0 and 1 collections in that window"),
        Metric("opening_full_collections", "", "full collections while the sockets opened"),
        Metric("opening_full_max_ms", "ms", "the longest of those"),
        Metric("tracked_objects", "", "objects the collector tracks, sockets open"),
        Metric("tracked_per_socket", "", "tracked objects added per socket"),
        Metric("frozen_objects", "", "objects frozen out of the collector's reach"),
        Metric("frozen_per_socket", "", "frozen objects added per socket"),
        Metric("heap_walk_ms", "ms", "the node's walk of the whole heap, when it has grown"),
        Metric("sockets", "", "sockets open and held"),
    ),
    target=Target("full_pause_max_ms", Comparison.BELOW, 50.0),
    full={"sockets": 10_000, "settle": 2.0, "idle": 10.0, "forced": 5},
    quick={"sockets": 500, "settle": 0.5, "idle": 2.0, "forced": 3},
    run=run,
    prepare=prepare,
)

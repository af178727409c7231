"""P8: a reconnect storm — after a restart, 10,000 sockets come back at once with
``resume_after`` and catch up.

As a deploy looks. The database is seeded (once, then copied for each run) with one
conversation per socket, each of its own person, and two messages in each chat. A
server starts on it and every socket connects (100 at a time), says ``hello``, reads
the chat's history up to ``welcome``'s ``last_seq`` and holds that seq. The server is
stopped (SIGTERM: it closes the sockets with 1001); while it is down, three messages
are appended to every chat through the store, as the seeding writes them. A server
starts again on the same database and the same port, and the moment it answers
``/readyz`` every client reconnects at once with ``resume_after`` = the seq it held.

A client is caught up when it has been welcomed with the chat's new ``last_seq`` and
has received every event it missed, in seq order with no gap. An attempt the server
refuses or drops (its caps on connections waiting for a head or a ``hello`` do that
under a storm) counts as an error, and the client tries again as the widget
(``static/widget.js``) does: after 0.5 s, 1 s, 2 s … (capped at 15 s, with equal
jitter). A gap, a reordering or a wrong ``last_seq`` fails the client for good. The
figure is the time from the restarted server being ready to the last client caught up
(or failed). The bench process times its own event loop meanwhile, so that a busy
client shows.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from websockets.exceptions import WebSocketException

from bench.client import ConversationClient
from bench.gctrace import CollectorWatch
from bench.harness import ServerProcess, copy_database, person_token
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
from bench.scenarios.latency import loop_lag
from bench.scenarios.sockets import close_all
from bench.seed import SeededConversation, open_store, seed_conversations, seed_each_chat
from bench.server import raise_fd_limit

HISTORY = 2
"""Messages each chat holds before the first server starts."""
CONNECTING_AT_ONCE = 100
"""Before the restart only: the sockets are opened as P5 opens them."""
GOING_AWAY = 1001
STORM_TIMEOUT_S = 600.0
"""How long a reconnecting client keeps trying; past it, it counts as failed."""
RECONNECT_BASE_S = 0.5
RECONNECT_CAP_S = 15.0
"""The widget's backoff: the n-th retry waits between half and all of min(cap, base·2ⁿ⁻¹)."""


async def prepare(workdir: Path, p: Params) -> tuple[Path, list[SeededConversation]]:
    database = workdir / "p8-template.db"
    store = await open_store(database)
    try:
        seeded = await seed_conversations(store, int(p["sockets"]), person_prefix="p8-person")
        await seed_each_chat(store, [s.chat_id for s in seeded], HISTORY)
    finally:
        await store.close()
    return database, seeded


@dataclass
class _Client:
    seeded: SeededConversation
    held: int = 0
    """The last seq this client saw before the restart."""
    expected: int = 0
    """The chat's last seq after the events appended while the server was down."""
    welcomed_at: float = 0.0
    caught_up_at: float = 0.0
    ended_at: float = 0.0
    error: str = ""
    """Why this client never caught up (a gap, or the storm's time was up)."""
    dropped: int = 0
    """Attempts refused or closed before the client caught up (each one retried)."""
    last_drop: str = ""
    socket: ConversationClient | None = None

    token: str = ""

    def connection(self, ws_base: str) -> ConversationClient:
        # Signed once: a token per attempt would be the bench's largest cost in a storm.
        self.token = self.token or person_token(self.seeded.person)
        self.socket = ConversationClient(ws_base, self.seeded.conversation_id, self.token)
        return self.socket


async def _read_up_to(client: ConversationClient, after: int, last: int) -> None:
    """Read frames until the event with seq *last*; every event after *after* must come,
    in order. Raises ``RuntimeError`` on a gap or a reordering."""
    assert client.ws is not None
    seen = after
    while seen < last:
        frame = json.loads(await client.ws.recv())
        seq = frame.get("seq")
        if not isinstance(seq, int) or seq == 0:
            continue  # not a stored event (a preview, an error, presence)
        if seq != seen + 1:
            raise _Gap(f"seq {seq} after {seen}")
        seen = seq


async def _connect_before(server: ServerProcess, clients: list[_Client]) -> None:
    limit = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def connected(c: _Client) -> None:
        async with limit:
            socket = c.connection(server.ws)
            await socket.open(resume_after=0)
            c.held = int(socket.welcome["last_seq"])
            await _read_up_to(socket, 0, c.held)

    await asyncio.gather(*(connected(c) for c in clients))


class _Gap(Exception):
    """The replay skipped or reordered an event, or ``welcome`` named another last seq:
    no retry mends that."""


async def _reconnect(c: _Client, ws_base: str, rng: random.Random) -> None:
    """Reconnect as the widget does (``static/widget.js``): on a refused or dropped
    attempt, again after an exponential backoff with equal jitter."""
    attempt = 0
    try:
        async with asyncio.timeout(STORM_TIMEOUT_S):
            while True:
                socket = c.connection(ws_base)
                try:
                    c.welcomed_at = await socket.open(
                        resume_after=c.held, open_timeout=STORM_TIMEOUT_S
                    )
                    last = socket.welcome.get("last_seq")
                    if last != c.expected:
                        raise _Gap(f"welcome's last_seq is {last}, not {c.expected}")
                    await _read_up_to(socket, c.held, c.expected)
                    break
                except (OSError, WebSocketException) as exc:
                    c.dropped += 1
                    c.last_drop = f"{type(exc).__name__}: {exc}"
                    await socket.close()
                attempt += 1
                ceiling = min(RECONNECT_CAP_S, RECONNECT_BASE_S * 2 ** (attempt - 1))
                await asyncio.sleep(rng.uniform(ceiling / 2, ceiling))
        c.caught_up_at = time.perf_counter()
    except Exception as exc:
        c.error = f"{type(exc).__name__}: {exc}"
    finally:
        c.ended_at = time.perf_counter()


async def run(
    ctx: RunContext, p: Params, prepared: tuple[Path, list[SeededConversation]]
) -> Metrics:
    template, seeded = prepared
    count, missed = int(p["sockets"]), int(p["missed"])
    limit = raise_fd_limit()
    if limit < count + 256:
        raise RuntimeError(f"the open-file limit is {limit}: too low for {count} sockets")
    database = ctx.path("p8.db")
    copy_database(template, database)
    clients = [_Client(s) for s in seeded[:count]]

    async with ctx.server(database) as before:
        port = before.port
        await _connect_before(before, clients)
        ctx.log(f"    {count} sockets open, each holding its last seq; restarting")
        stopping = time.perf_counter()
    stopped_in = time.perf_counter() - stopping
    going_away = sum(
        1 for c in clients if c.socket and c.socket.ws and c.socket.ws.close_code == GOING_AWAY
    )
    store = await open_store(database)
    try:
        last = await seed_each_chat(store, [c.seeded.chat_id for c in clients], missed)
    finally:
        await store.close()
    for c in clients:
        c.expected = last[c.seeded.chat_id]

    lag: list[float] = []
    stamps: list[float] = []
    stop = asyncio.Event()
    # The bench's own collector, timed as the server's is in P9: 10,000 clients make a
    # heap whose full collections would stall every one of them at once.
    # What the bench holds from before the restart is frozen out of its reach.
    own_gc = CollectorWatch()
    gc.collect()
    gc.freeze()
    own_gc.install()
    async with ctx.server(database, port=port) as server:
        ready_at, cpu_started = time.perf_counter(), server.cpu_seconds()
        try:
            async with asyncio.TaskGroup() as tg, ctx.measuring(server, "P8"):
                tg.create_task(loop_lag(lag, stop, stamps))
                rng = random.Random(ctx.run_index)
                await asyncio.gather(
                    *(_reconnect(c, server.ws, random.Random(rng.random())) for c in clients)
                )
                cpu = server.cpu_seconds() - cpu_started
                stop.set()
                client_gc = own_gc.take()
        finally:
            own_gc.uninstall()
            gc.unfreeze()
            await close_all([c.socket for c in clients if c.socket is not None])

    worst = sorted(range(len(lag)), key=lag.__getitem__)[-3:]
    ctx.log(
        "    the bench's longest stalls: "
        + ", ".join(f"{lag[i] * 1000:.0f} ms at {stamps[i] - ready_at:.1f} s" for i in worst)
    )
    failed = [c for c in clients if c.error]
    for kind in sorted({c.error for c in failed})[:5]:
        ctx.log(f"    failed ({sum(1 for c in failed if c.error == kind)}×): {kind}")
    drops = Counter(c.last_drop.split(":")[0] for c in clients if c.dropped)
    for kind, times in drops.most_common(5):
        ctx.log(f"    dropped and retried ({times} clients, last as): {kind}")
    done = [c for c in clients if not c.error]
    if not done:
        raise RuntimeError(f"no client caught up: {failed[0].error}")
    caught_up = [c.caught_up_at - ready_at for c in done]
    welcomed = max(c.welcomed_at for c in done) - ready_at
    return {
        "all_caught_up_s": max(c.ended_at for c in clients) - ready_at,
        "caught_up_p50_s": percentile(caught_up, 50),
        "caught_up_p99_s": percentile(caught_up, 99),
        "all_welcomed_s": welcomed,
        "open_per_s": len(done) / welcomed,
        "server_cpu_ms_per_open": cpu / count * 1000,
        "errors": float(sum(c.dropped for c in clients)),
        "clients_retried": float(sum(1 for c in clients if c.dropped)),
        "failed": float(len(failed)),
        "events_replayed": float(sum(c.expected - c.held for c in done)),
        "stop_s": stopped_in,
        "closed_going_away": float(going_away),
        "client_lag_p99_ms": percentile(lag, 99) * 1000,
        "client_lag_max_ms": max(lag, default=0.0) * 1000,
        "client_gc_max_ms": max(g["longest_ms"] for g in client_gc["generations"]),
    }


SCENARIO = Scenario(
    id="P8",
    title="reconnect storm: 10,000 sockets resume at once after a restart",
    metrics=(
        Metric("all_caught_up_s", "s", "restarted server ready → the last client caught up"),
        Metric("caught_up_p50_s", "s", "ready → a client caught up, median"),
        Metric("caught_up_p99_s", "s", "ready → a client caught up, 99th percentile"),
        Metric("all_welcomed_s", "s", "ready → the last welcome"),
        Metric("open_per_s", "/s", "clients welcomed per second of the storm"),
        Metric("server_cpu_ms_per_open", "ms", "server CPU, all threads, per client caught up"),
        Metric("errors", "", "attempts refused or closed by the server (then retried)"),
        Metric("clients_retried", "", "clients that had to retry at least once"),
        Metric("failed", "", "clients never caught up: a gap, or out of time"),
        Metric("events_replayed", "", "missed events received by the clients"),
        Metric("stop_s", "s", "SIGTERM → the first server gone, sockets open"),
        Metric("closed_going_away", "", "sockets the stopping server closed with 1001"),
        Metric("client_lag_p99_ms", "ms", "the bench's own event-loop lag, 99th percentile"),
        Metric("client_lag_max_ms", "ms", "the bench's own event-loop lag, longest"),
        Metric("client_gc_max_ms", "ms", "the bench's own longest garbage collection"),
    ),
    target=Target("all_caught_up_s", Comparison.BELOW, 15.0),
    full={"sockets": 10_000, "missed": 3},
    quick={"sockets": 500, "missed": 3},
    run=run,
    prepare=prepare,
)

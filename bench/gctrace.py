"""The server's garbage-collector pauses, as P9 reads them: a bench server started with
``BENCH_GC=1`` watches every collection with a :data:`gc.callbacks` hook.

``GET /bench/gc`` answers, as JSON, with the collections seen since the previous call
(per generation: how many, the longest, and every full collection's duration; every
collection longer than :data:`SLOW_S`, with its generation), and the
collector's state now: :func:`gc.get_count`, the objects it tracks
(``len(gc.get_objects())``, per generation) and those frozen out of its reach
(:func:`gc.get_freeze_count`). ``POST /bench/gc/collect`` runs one full collection in
the server's event loop, as an automatic one would run, and answers with its duration;
``POST /bench/gc/walk`` runs the node's scheduled walk of the whole heap
(:class:`server.collector.CycleCollector`: everything thawed, then collected) and
answers with its duration.

What is timed is what the process takes, whatever it does: a server that freezes its
start-up objects (:func:`gc.freeze`) pays only for the others, and the hook sees that.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

GC_PATH = "/bench/gc"
COLLECT_PATH = "/bench/gc/collect"
WALK_PATH = "/bench/gc/walk"
KEPT = 10_000
"""Full (and slow) collections remembered between two reads; older ones are dropped."""
SLOW_S = 0.002
"""A collection of any generation longer than this is listed with its duration."""


@dataclass
class _Generation:
    collections: int = 0
    longest_s: float = 0.0
    total_s: float = 0.0


@dataclass
class CollectorWatch:
    """Times every collection from its ``start`` to its ``stop`` callback."""

    generations: list[_Generation] = field(default_factory=lambda: [_Generation() for _ in "012"])
    full_s: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT))
    # Every collection of any generation that took longer than SLOW_S: (generation, s).
    slow: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=KEPT))
    _started: float = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collection's pause: nothing here may allocate much or block.
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = self.generations[int(info["generation"])]
        generation.collections += 1
        generation.total_s += took
        generation.longest_s = max(generation.longest_s, took)
        if info["generation"] == 2:
            self.full_s.append(took)
        if took > SLOW_S:
            self.slow.append((int(info["generation"]), took))

    def take(self) -> dict[str, Any]:
        """What was seen since the last take, and the collector's state now."""
        seen, self.generations = self.generations, [_Generation() for _ in "012"]
        full, self.full_s = list(self.full_s), deque(maxlen=KEPT)
        slow, self.slow = list(self.slow), deque(maxlen=KEPT)
        return {
            "generations": [
                {
                    "collections": g.collections,
                    "longest_ms": g.longest_s * 1000,
                    "total_ms": g.total_s * 1000,
                }
                for g in seen
            ],
            "full_ms": [s * 1000 for s in full],
            "slow": [{"generation": g, "ms": s * 1000} for g, s in slow],
            "count": list(gc.get_count()),
            "tracked": [len(gc.get_objects(generation)) for generation in range(3)],
            "frozen": gc.get_freeze_count(),
            "enabled": gc.isenabled(),
            "threshold": list(gc.get_threshold()),
        }

    async def report(self, request: Request) -> Response:
        return JSONResponse(self.take())

    async def collect(self, request: Request) -> Response:
        # Synchronous on purpose: the event loop stops for it, as for an automatic one.
        started = time.perf_counter()
        unreachable = gc.collect()
        took = time.perf_counter() - started
        return JSONResponse({"ms": took * 1000, "unreachable": unreachable})

    async def walk(self, request: Request) -> Response:
        """The node's scheduled walk of the whole heap (:mod:`server.collector`), now."""
        collector = request.app.state.node.collector
        if collector is None:
            return JSONResponse({"error": "no collector"}, status_code=404)
        return JSONResponse({"ms": collector.walk() * 1000})

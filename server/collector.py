"""The cycle collector's schedule: short pauses, and the whole heap walked as it grows.

CPython's full collection walks every tracked object, in the event loop's thread: with
a thousand sub-agents running it holds every conversation of the node for 130–200 ms,
and it comes every few seconds, as objects that outlive a young collection pile up.
What survives a full collection is mostly what lives on: the node, the sockets, the
running tasks. So after each full collection the survivors are frozen
(:func:`gc.freeze`): the next full collection walks only what was made since, and its
pause stays short whatever the node holds.

A frozen object is still freed as soon as nothing refers to it. What freezing holds back
is a cycle of objects that became garbage after they were frozen (a cancelled task's
frames and its exception, say): so once the frozen objects have grown by a quarter
(:data:`WALK_GROWTH`) since the last walk, everything is thawed and one full collection
walks it all, frees those cycles, and freezes what is left. That is CPython's own rule
for its full collections (one when the objects that outlived the young ones reach a
quarter of those it holds), applied to the heap it no longer walks. It is considered
every ``walk_every`` seconds (``SWITCHBOARD_GC_FULL_WALK_SECONDS``), so it comes at most
that often, and the frozen heap, live or garbage, stays more than a quarter above what
the last walk left for at most that long; a node whose heap does not grow (10,000 idle
sockets) never pays for a walk. The walk is the one long pause, about 0.2 s per 1,000
sockets open, and it is logged with its length (and counted in ``/metrics``), never
hidden.

The thresholds that start young collections are CPython's own unless
``SWITCHBOARD_GC_THRESHOLDS`` sets them. A node in a steady state frees old objects
about as fast as it makes new ones (a task's record replaced at each progress update),
so the count that starts a young collection (allocations less deallocations, 700)
grows slowly while the youngest generation fills with everything made since: a young
collection then walks 10,000–25,000 objects, 5–20 ms. A first threshold of 100 makes
them about a sixth as long, but the collector's time per second doubles, and on a node
near half a core busy that did more harm to the tail than the pauses (BENCHMARKS.md, P1).
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import anyio

log = logging.getLogger(__name__)

WALK_GROWTH = 0.25
"""How much the frozen objects must have grown since the last walk for the next one."""


class CycleCollector:
    """Freeze what each full collection leaves; walk the whole heap when what is frozen
    has grown by :data:`WALK_GROWTH`, considered every *walk_every* s."""

    def __init__(self, walk_every: float, thresholds: tuple[int, int, int] | None = None) -> None:
        self.walk_every = walk_every
        self.thresholds = thresholds
        self._previous_thresholds: tuple[int, int, int] | None = None
        self.walks = 0
        self.last_walk_seconds = 0.0
        # What was frozen after the last walk (or start-up): the next walk's baseline.
        self.frozen_after_walk = 0
        self._installed = False

    def install(self) -> None:
        """Collect and freeze what start-up made; from now on freeze after each full one."""
        if self._installed:
            return
        gc.collect()
        gc.freeze()
        self.frozen_after_walk = gc.get_freeze_count()
        if self.thresholds is not None:
            self._previous_thresholds = gc.get_threshold()
            gc.set_threshold(*self.thresholds)
        gc.callbacks.append(self._on_collection)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        gc.callbacks.remove(self._on_collection)
        gc.unfreeze()
        if self._previous_thresholds is not None:
            gc.set_threshold(*self._previous_thresholds)
            self._previous_thresholds = None
        self._installed = False

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            # Every generation is empty but the oldest, whose objects all just survived.
            gc.freeze()

    def walk(self) -> float:
        """Thaw everything and collect it all at once (then freeze the survivors)."""
        started = time.perf_counter()
        gc.unfreeze()
        unreachable = gc.collect()
        took = time.perf_counter() - started
        self.walks += 1
        self.last_walk_seconds = took
        self.frozen_after_walk = gc.get_freeze_count()
        log.info(
            "full heap walk",
            extra={"ms": round(took * 1000, 1), "unreachable": unreachable},
        )
        return took

    def walk_due(self) -> bool:
        """Whether what is frozen has grown by :data:`WALK_GROWTH` since the last walk."""
        return gc.get_freeze_count() >= self.frozen_after_walk * (1 + WALK_GROWTH)

    async def run(self) -> None:
        """Every ``walk_every`` seconds, walk the whole heap if it is due; until cancelled."""
        while True:
            await anyio.sleep(self.walk_every)
            if self.walk_due():
                self.walk()

    def statistics(self) -> dict[str, float]:
        return {
            "gc_full_walks": self.walks,
            "gc_full_walk_seconds": self.last_walk_seconds,
            "gc_frozen_objects": gc.get_freeze_count(),
        }

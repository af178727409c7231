"""The cycle collector's schedule: short pauses, and the whole heap walked as it grows.

CPython's collections walk the objects of their generation in the event loop's
thread: with a thousand sub-agents running, a young collection walked 10,000–25,000
objects (5–13 ms), a middle one the survivors of ten of them (10–19 ms), a full one
everything that had survived since (20–140 ms), and they hold every conversation of
the node. What survives a collection is mostly what lives on: the node, the sockets,
the running tasks, a task's latest record. So after every collection, of any
generation, the survivors are frozen (:func:`gc.freeze`, which costs the same whatever
it freezes): the middle and oldest generations stay empty, their collections cost
nothing, and a young collection walks only what was made since the last one. Its
first threshold is :data:`YOUNG_THRESHOLD` unless ``SWITCHBOARD_GC_THRESHOLDS`` sets
them: lower than CPython's 700, so each walk is short (P1: the longest young
collection 2.4–5.9 ms, against 9.5–13.4 ms at 700 with the middle ones 9.7–19.2 and
full ones up to 140). With nothing left for the older generations to walk, the lower
threshold no longer makes them costlier, as it did when only full collections froze
(BENCHMARKS.md).

A frozen object is still freed as soon as nothing refers to it. What freezing holds back
is a cycle of objects that became garbage after they were frozen (a cancelled task's
frames and its exception, a conversation's runtime and its agent once it unloads): a
cycle found garbage by the young collection after which it was made is freed then; one
that dies later waits. So once the frozen objects have grown by a quarter
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

YOUNG_THRESHOLD = 300
"""The first of the collector's thresholds unless configured: a young collection once
the tracked objects made exceed those freed by so many (CPython's is 700). The other
two are CPython's: with every survivor frozen they have nothing to walk."""


class CycleCollector:
    """Freeze what each collection leaves; walk the whole heap when what is frozen has
    grown by :data:`WALK_GROWTH`, considered every *walk_every* s. *thresholds*: the
    collector's while installed; by default :data:`YOUNG_THRESHOLD` and CPython's
    other two."""

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
        """Collect and freeze what start-up made; from now on freeze after each collection."""
        if self._installed:
            return
        gc.collect()
        gc.freeze()
        self.frozen_after_walk = gc.get_freeze_count()
        self._previous_thresholds = previous = gc.get_threshold()
        gc.set_threshold(*(self.thresholds or (YOUNG_THRESHOLD, *previous[1:])))
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
        if phase == "stop":
            # Whatever generation this was, its survivors just moved to an older one.
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

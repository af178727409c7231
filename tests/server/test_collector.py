"""The cycle collector's schedule (server.collector): full collections walk only what
is new; the walk, once the frozen heap has grown by a quarter, frees the cycles that
freezing held back."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import anyio
import pytest

from server.collector import WALK_GROWTH, CycleCollector


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> tuple[_Node, weakref.ref[_Node]]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a, weakref.ref(b)


@pytest.fixture
def collector() -> Iterator[CycleCollector]:
    collector = CycleCollector(walk_every=600)
    collector.install()
    try:
        yield collector
    finally:
        collector.uninstall()


def test_a_full_collection_freezes_what_it_leaves(collector: CycleCollector) -> None:
    kept = [_Node() for _ in range(1000)]
    before = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() >= before + len(kept)
    # What is frozen is left out of the next full collection's walk.
    assert not any(obj is kept[0] for obj in gc.get_objects())


def test_garbage_is_still_freed_at_once_when_nothing_refers_to_it(
    collector: CycleCollector,
) -> None:
    node = _Node()
    gone = weakref.ref(node)
    gc.collect()  # frozen now
    del node
    assert gone() is None


def test_a_cycle_that_died_frozen_waits_for_the_walk(collector: CycleCollector) -> None:
    root, member = _cycle()
    gc.collect()  # the cycle is alive: frozen
    del root
    gc.collect()
    assert member() is not None  # held back: the collector no longer walks it
    took = collector.walk()
    assert member() is None
    assert took > 0
    statistics = collector.statistics()
    assert statistics["gc_full_walks"] == 1
    assert statistics["gc_full_walk_seconds"] == took


def test_uninstall_thaws_everything() -> None:
    collector = CycleCollector(walk_every=600)
    collector.install()
    assert gc.get_freeze_count() > 0
    collector.uninstall()
    assert gc.get_freeze_count() == 0
    root, member = _cycle()
    gc.collect()
    del root
    gc.collect()
    assert member() is None


def test_the_walk_is_due_once_the_frozen_heap_has_grown_by_a_quarter(
    collector: CycleCollector,
) -> None:
    assert not collector.walk_due()
    baseline = collector.frozen_after_walk
    assert baseline > 0
    kept = [_Node() for _ in range(int(baseline * WALK_GROWTH) // 2)]
    gc.collect()  # frozen: an eighth more
    assert not collector.walk_due()
    kept += [_Node() for _ in range(int(baseline * WALK_GROWTH))]
    gc.collect()  # three eighths more
    assert collector.walk_due()
    collector.walk()
    # The walk's survivors are the new baseline, the kept objects among them. (Not
    # baseline + kept: what was frozen at install may have died since, in cycles the
    # walk has just freed.)
    assert collector.frozen_after_walk == gc.get_freeze_count() >= len(kept)
    assert not any(obj is kept[0] or obj is kept[-1] for obj in gc.get_objects())
    assert not collector.walk_due()
    del kept


@pytest.mark.anyio
async def test_run_walks_only_when_due(collector: CycleCollector) -> None:
    collector.walk_every = 0.01
    async with anyio.create_task_group() as tg:
        tg.start_soon(collector.run)
        await anyio.sleep(0.1)
        assert collector.walks == 0  # nothing grew: no pause
        root, member = _cycle()
        freed = anyio.Event()
        weakref.finalize(member(), freed.set)
        kept = [_Node() for _ in range(int(collector.frozen_after_walk * WALK_GROWTH) + 10)]
        gc.collect()  # frozen, the cycle with the rest
        del root
        with anyio.fail_after(5):
            await freed.wait()  # by the walk, which came once it was due
        tg.cancel_scope.cancel()
    assert collector.walks >= 1
    del kept


def test_the_thresholds_hold_while_installed_and_are_restored_after() -> None:
    before = gc.get_threshold()
    collector = CycleCollector(walk_every=600, thresholds=(123, 7, 45))
    collector.install()
    try:
        assert gc.get_threshold() == (123, 7, 45)
    finally:
        collector.uninstall()
    assert gc.get_threshold() == before

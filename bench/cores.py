"""Which core the server under test runs on, and which one the bench (the driver) does.

On a machine with two usable cores or more, :func:`pin_bench` keeps the bench process
on one and every server it starts (:func:`pin_server`: each server process, and the
Redis a peer needs) on another, so that the server's figures are of one core that the
load driver does not share. With one usable core nothing is pinned. What was chosen is
written into the results (``pinning``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class CorePlan:
    usable: tuple[int, ...]
    """The cores this process could run on before it pinned itself."""
    server: int | None
    driver: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "pinned": self.server is not None,
            "usable_cores": list(self.usable),
            "server_core": self.server,
            "driver_core": self.driver,
        }


_plan: CorePlan | None = None


def plan() -> CorePlan:
    """The plan :func:`pin_bench` applied, or, before it ran, the one it would apply."""
    if _plan is not None:
        return _plan
    usable = tuple(sorted(os.sched_getaffinity(0)))
    if len(usable) < 2:
        return CorePlan(usable, None, None)
    # The server gets the first core, the driver the last: on a two-core machine each
    # has one to itself (apart from whatever else the machine runs).
    return CorePlan(usable, usable[0], usable[-1])


def pin_bench() -> CorePlan:
    """Pin this process (all its threads) to the driver's core; return the plan."""
    global _plan
    chosen = plan()
    _plan = chosen
    if chosen.driver is not None:
        _pin_all_threads(os.getpid(), chosen.driver)
    return chosen


def pin_server(pid: int) -> None:
    """Pin process *pid*, every thread it has now and so every thread it starts later,
    to the server's core; nothing unless :func:`pin_bench` has pinned the bench."""
    if _plan is not None and _plan.server is not None:
        _pin_all_threads(pid, _plan.server)


def _pin_all_threads(pid: int, core: int) -> None:
    # sched_setaffinity acts on one thread; a thread inherits its creator's mask, so
    # pinning each one there is now pins the threads to come as well.
    try:
        tids = [int(entry.name) for entry in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        tids = [pid]
    for tid in tids:
        # OSError: the thread has ended since the listing.
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, {core})

"""Where a server's memory went: ``GET /bench/memory`` on a bench server started with
``BENCH_TRACE_MEMORY=FRAMES`` (tracemalloc, keeping that many frames per allocation).

Each call answers with what was allocated and is still alive since the previous call,
grouped by owner: the innermost frame of the project's own code (``server/``,
``agents/``, ``audit/``) on the allocation's stack, or else the innermost frame of the
web stack (uvicorn, Starlette, websockets) — the line a change would have to touch.
``?per=N`` divides by N (the sockets opened in between); ``?top=N`` shows N owners;
``?by=line`` groups by the allocating line itself (the innermost frame, in whatever
package), which tells what a web-stack owner's kilobytes are.

``GET /bench/heap`` (P10) collects garbage first (:func:`gc.collect`), then answers as
JSON with the traced heap (:func:`tracemalloc.get_traced_memory`) and, with
``?top=N``, the N owners whose share grew or shrank most since the previous call.
The traced total is read before any snapshot is taken, and no snapshot outlives the
call that took it (only its totals per owner do), so one call's own work is not in
the next one's figure.

tracemalloc slows the server and adds memory of its own, so this explains P5's figure
but never produces it.
"""

from __future__ import annotations

import gc
import linecache
import tracemalloc
from collections import Counter
from pathlib import Path

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tuple(str(ROOT / name) + "/" for name in ("server", "agents", "audit"))
WEB_STACK = ("/uvicorn/", "/starlette/", "/websockets/")
IGNORED = (tracemalloc.__file__, linecache.__file__)


def owner(trace: tracemalloc.Traceback) -> str:
    """The line that owns an allocation (see the module docstring)."""
    fallback = None
    for frame in reversed(trace):  # most recent first
        if frame.filename.startswith(PROJECT):
            return f"{Path(frame.filename).relative_to(ROOT)}:{frame.lineno}"
        if fallback is None and any(part in frame.filename for part in WEB_STACK):
            name = frame.filename.split("site-packages/", 1)[-1]
            fallback = f"{name}:{frame.lineno}"
    return fallback or f"other: {trace[-1].filename.split('/')[-1]}:{trace[-1].lineno}"


def allocator(trace: tracemalloc.Traceback) -> str:
    """The line that made an allocation: the innermost frame of any file."""
    frame = trace[-1]
    name = frame.filename
    if name.startswith(str(ROOT) + "/"):
        name = str(Path(name).relative_to(ROOT))
    else:
        name = name.split("site-packages/", 1)[-1].split("/lib/python3", 1)[-1]
    return f"{name}:{frame.lineno}"


class MemoryTrace:
    def __init__(self, frames: int) -> None:
        tracemalloc.start(frames)
        self._previous = tracemalloc.take_snapshot()
        self._owners: Counter[str] = Counter()
        self._owned: Counter[str] = Counter()

    def _heap(self, top: int) -> dict[str, object]:
        gc.collect()
        traced, peak = tracemalloc.get_traced_memory()
        owners: list[list[object]] = []
        if top > 0:
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, path) for path in IGNORED]
            )
            sizes: Counter[str] = Counter()
            counts: Counter[str] = Counter()
            for stat in snapshot.statistics("traceback"):
                key = owner(stat.traceback)
                sizes[key] += stat.size
                counts[key] += stat.count
            del snapshot
            grown = Counter(sizes)
            grown.subtract(self._owners)
            self._owners, self._owned, previous = sizes, counts, self._owned
            for key, size in sorted(grown.items(), key=lambda kv: -abs(kv[1]))[:top]:
                owners.append([key, size, counts[key] - previous[key]])
        return {"traced_bytes": traced, "peak_bytes": peak, "owners": owners}

    async def heap(self, request: Request) -> Response:
        top = int(request.query_params.get("top", "0"))
        return JSONResponse(await anyio.to_thread.run_sync(self._heap, top))

    def _compare(self, by: str) -> tuple[Counter[str], Counter[str]]:
        key_of = allocator if by == "line" else owner
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, path) for path in IGNORED]
        )
        sizes: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        for stat in snapshot.compare_to(self._previous, "traceback"):
            key = key_of(stat.traceback)
            sizes[key] += stat.size_diff
            counts[key] += stat.count_diff
        self._previous = snapshot
        return sizes, counts

    async def report(self, request: Request) -> Response:
        per = max(1, int(request.query_params.get("per", "1")))
        top = int(request.query_params.get("top", "40"))
        by = request.query_params.get("by", "owner")
        sizes, counts = await anyio.to_thread.run_sync(self._compare, by)
        total = sum(sizes.values())
        lines = [f"{total / 1024 / per:10.2f} KiB  (per {per}) net, all owners"]
        for key, size in sizes.most_common(top):
            line = ""
            if ":" in key and not key.startswith("other"):
                path, _, number = key.rpartition(":")
                source = (
                    ROOT / path
                    if not path.startswith(("uvicorn", "starlette", "websockets"))
                    else None
                )
                if source is not None:
                    line = linecache.getline(str(source), int(number)).strip()
            lines.append(
                f"{size / 1024 / per:10.2f} KiB {counts[key] / per:7.1f} objs  {key}  {line}"
            )
        return PlainTextResponse("\n".join(lines) + "\n")

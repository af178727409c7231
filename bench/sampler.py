"""A CPU-time sampler inside the server process, for ``--profile``.

py-spy reads a process's stacks from outside; on CPython 3.11 it pins samples on the
wrong frame (a loop of ``anyio.CancelScope()`` beside a loop of plain arithmetic, half
of the time each, came out 99 % ``asyncio.current_task``). This sampler asks the
interpreter instead: ``ITIMER_PROF`` fires once per millisecond of the process's CPU
time, and the handler records the main thread's stack, which is the event loop's.

Work in other threads counts toward the timer but shows up as the event loop's stack
at that moment, so read a profile of a server whose time is on the loop (SQLite runs
inline there under steady load). Samples land on bytecode boundaries, and the
handler costs a few microseconds a sample.

``BENCH_SAMPLE=PATH`` installs it in ``python -m bench.server``; ``POST /bench/sample``
starts a window (discarding what came before) and ``DELETE /bench/sample`` ends it
and writes the window's stacks to ``PATH`` in py-spy's raw format (one stack a line,
outermost frame first, frames separated by ``;``, then the sample count), which
:mod:`bench.profile` summarizes.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SAMPLE_PATH = "/bench/sample"
_INTERVAL = 0.001

_Stack = tuple[tuple[CodeType, int], ...]


class Sampler:
    def __init__(self, output: Path) -> None:
        self.output = output
        self.samples: Counter[_Stack] = Counter()
        self.running = False

    def _on_tick(self, _signum: int, frame: FrameType | None) -> None:
        stack = []
        while frame is not None:
            stack.append((frame.f_code, frame.f_lineno or 0))
            frame = frame.f_back
        stack.reverse()
        self.samples[tuple(stack)] += 1

    def start(self) -> None:
        self.samples.clear()
        signal.signal(signal.SIGPROF, self._on_tick)
        signal.setitimer(signal.ITIMER_PROF, _INTERVAL, _INTERVAL)
        self.running = True

    def stop(self) -> int:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        self.running = False
        lines = []
        for stack, count in self.samples.items():
            frames = ";".join(f"{c.co_qualname} ({c.co_filename}:{line})" for c, line in stack)
            lines.append(f"{frames} {count}")
        self.output.write_text("\n".join(lines) + "\n")
        return sum(self.samples.values())

    async def endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            self.start()
            return JSONResponse({"sampling": True})
        if not self.running:
            return JSONResponse({"error": "not sampling"}, status_code=409)
        samples = self.stop()
        return JSONResponse({"samples": samples, "output": str(self.output)})

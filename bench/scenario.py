"""What a scenario is, what one run of it gets, and how runs become figures.

A :class:`Scenario` names its metrics and its target, and has one coroutine that runs
it once against a fresh server and returns that run's metrics. The runner repeats it
(``--runs``, 3 by default) and reports each metric as the median of the runs, with
their spread (min–max).
"""

from __future__ import annotations

import asyncio
import enum
import math
import shutil
import signal
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import ROOT, ServerProcess, free_port, http_json
from bench.sampler import SAMPLE_PATH

Params = Mapping[str, Any]
Metrics = dict[str, float]


class Comparison(enum.StrEnum):
    BELOW = "<"
    AT_MOST = "<="
    AT_LEAST = ">="

    def holds(self, value: float, target: float) -> bool:
        if self is Comparison.BELOW:
            return value < target
        if self is Comparison.AT_MOST:
            return value <= target
        return value >= target


@dataclass(frozen=True, slots=True)
class Target:
    """A goal for one metric's median: ``metric op value`` (``p99_ms < 25``)."""

    metric: str
    op: Comparison
    value: float

    def met(self, value: float) -> bool:
        return self.op.holds(value, self.value)

    def describe(self, unit: str) -> str:
        return f"{self.op.value} {self.value:g} {unit}".strip()


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    what: str


@dataclass
class RunContext:
    """What a run may use: a directory of its own, and servers that it starts."""

    workdir: Path
    run_index: int
    profile_dir: Path | None = None
    log: Callable[[str], None] = print
    servers: list[ServerProcess] = field(default_factory=list)

    def path(self, name: str) -> Path:
        return self.workdir / f"run{self.run_index}-{name}"

    @asynccontextmanager
    async def server(
        self,
        database: Path | None = None,
        env: Mapping[str, str] | None = None,
        module: Sequence[str] = ("bench.server",),
        python: str = sys.executable,
        cwd: Path = ROOT,
        port: int | None = None,
    ) -> AsyncIterator[ServerProcess]:
        """A fresh bench server on *database* (a new file by default), stopped after;
        ``module=("server", "serve")`` is ``switchboard serve`` with the demo workspace,
        and *python* and *cwd* another venv's server (a peer, :mod:`bench.peers`).
        *port* is a free one by default (P8 restarts a server on the port it had)."""
        n = len(self.servers)
        env = dict(env or {})
        if self.profile_dir is not None and tuple(module) == ("bench.server",):
            env.setdefault("BENCH_SAMPLE", str(self.path(f"server{n}-samples.txt").resolve()))
        server = ServerProcess(
            database=database or self.path(f"server{n}.db"),
            log_path=self.path(f"server{n}.log"),
            port=port or free_port(),
            env=env,
            module=tuple(module),
            python=python,
            cwd=cwd,
        )
        self.servers.append(server)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    @asynccontextmanager
    async def measuring(self, server: ServerProcess, label: str) -> AsyncIterator[None]:
        """Mark the measured window; with ``--profile``, the server is sampled in it.

        A bench server samples itself (:mod:`bench.sampler`); another server (a peer)
        is sampled by py-spy from outside. Only the first run is profiled, and its
        figures are perturbed. Profile to explain figures, never to produce them.
        """
        if self.profile_dir is None or self.run_index != 0:
            yield
            return
        output = self.profile_dir / f"{label}.txt"
        if server.env.get("BENCH_SAMPLE"):
            async with _sampled(server, output):
                yield
        else:
            async with _spied(server, output):
                yield
        self.log(f"    profile of the server: {output}")


@asynccontextmanager
async def _sampled(server: ServerProcess, output: Path) -> AsyncIterator[None]:
    status, body = await http_json("POST", server.http + SAMPLE_PATH, {})
    if status != 200:
        raise RuntimeError(f"POST {SAMPLE_PATH} answered {status}: {body}")
    try:
        yield
    finally:
        status, body = await http_json("DELETE", server.http + SAMPLE_PATH)
        if status == 200:
            # The server wrote it where it was told (BENCH_SAMPLE).
            shutil.move(body["output"], output)


@asynccontextmanager
async def _spied(server: ServerProcess, output: Path) -> AsyncIterator[None]:
    spy = await asyncio.create_subprocess_exec(
        _py_spy(),
        "record",
        "--pid",
        str(server.pid),
        "--rate",
        "250",
        "--format",
        "raw",
        # Only the thread holding the GIL: what the process spends its one Python
        # core on. Sampling pauses the server (no --nonblocking): without the pause,
        # which thread holds the GIL and what its stack shows are read at different
        # moments.
        "--gil",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(30):
                await spy.wait()
        except TimeoutError:
            spy.kill()


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


RunFunction = Callable[[RunContext, Params, Any], Awaitable[Metrics]]
PrepareFunction = Callable[[Path, Params], Awaitable[Any]]


@dataclass(frozen=True)
class Scenario:
    """One benchmark: its parameters (full and ``--quick``), metrics, target and run."""

    id: str
    title: str
    metrics: Sequence[Metric]
    target: Target
    full: Params
    quick: Params
    run: RunFunction
    prepare: PrepareFunction | None = None
    """Run once before the runs (a seeded database they all copy); gets the work dir."""

    def unit(self, metric: str) -> str:
        return next((m.unit for m in self.metrics if m.name == metric), "")


def percentile(values: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0–100) of *values*, linearly interpolated between ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Figure:
    """One metric over the runs that produced it: the median, and the spread.

    ``runs`` holds one value per run, ``None`` where that run did not produce it (P2's
    roll-up when it never came); the median and spread are over the others.
    """

    median: float
    min: float
    max: float
    runs: tuple[float | None, ...]

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Figure:
        present = [v for v in values if v is not None]
        return cls(statistics.median(present), min(present), max(present), tuple(values))

    @property
    def missing(self) -> int:
        return sum(1 for v in self.runs if v is None)

    def to_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.min, "max": self.max, "runs": list(self.runs)}


def summarize(runs: Sequence[Metrics]) -> dict[str, Figure]:
    """Each metric that any run produced, as a :class:`Figure`."""
    names = list(dict.fromkeys(name for run in runs for name in run))
    return {name: Figure.of([run.get(name) for run in runs]) for name in names}

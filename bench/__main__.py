"""``python -m bench``: run the benchmarks, print the table, write the JSON.

::

    python -m bench [--quick] [--only P1,P4] [--runs N] [--json PATH]
                    [--profile DIR] [--keep]

Each run of each scenario starts a fresh server (``python -m bench.server``, uvicorn,
the embedded defaults, a SQLite file in a temporary directory) and drives it from this
process with ``websockets`` clients; with two cores or more, the server runs on one and
this process on another (:mod:`bench.cores`). Exit code 0 when every scenario ran (targets met
or not), 1 when one failed to run, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cores import pin_bench, plan
from bench.harness import ROOT
from bench.report import ScenarioResult, machine, revision, table, write_json
from bench.scenario import RunContext, summarize
from bench.scenarios import SCENARIOS
from bench.server import raise_fd_limit

DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of a real Switchboard server, driven over WebSockets.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller workloads (P5: 1,000 sockets)"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios to run, e.g. P1,P4 (default: all)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (default: 3)")
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where to write the results (default: {DEFAULT_JSON.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the server during each scenario's first run (raw stacks in DIR)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ID.PARAM=VALUE",
        help="override a scenario's parameter, e.g. P1.conversations=20 (repeatable)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (databases, server logs)"
    )
    return parser


def _selected(only: str) -> list[str]:
    if not only.strip():
        return list(SCENARIOS)
    chosen = [name.strip().upper() for name in only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        raise SystemExit(
            f"python -m bench: unknown scenario {', '.join(unknown)} "
            f"(choose from {', '.join(SCENARIOS)})"
        )
    return [name for name in SCENARIOS if name in chosen]


async def _run_scenario(name: str, args: argparse.Namespace, workdir: Path) -> ScenarioResult:
    scenario = SCENARIOS[name]
    params = {**(scenario.quick if args.quick else scenario.full), **args.overrides.get(name, {})}
    # Each run starts a server on the code as it is then: in a tree others commit to,
    # the revision is read per scenario (run from a `git worktree` to hold it still).
    result = ScenarioResult(scenario, params, revision=revision())
    print(f"{name}: {scenario.title}", flush=True)
    directory = workdir / name
    directory.mkdir()
    try:
        prepared = None
        if scenario.prepare is not None:
            started = time.perf_counter()
            prepared = await scenario.prepare(directory, params)
            print(f"  prepared in {time.perf_counter() - started:.1f} s", flush=True)
        for index in range(args.runs):
            ctx = RunContext(directory, index, args.profile, log=_log)
            started = time.perf_counter()
            metrics = await scenario.run(ctx, params, prepared)
            result.runs.append(metrics)
            target = scenario.target.metric
            print(
                f"  run {index + 1}/{args.runs}: {target} = {metrics[target]:.2f} "
                f"{scenario.unit(target)} ({time.perf_counter() - started:.1f} s)",
                flush=True,
            )
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        print(f"  FAILED: {result.error}", flush=True)
        traceback.print_exc()
    result.figures = summarize(result.runs)
    result.load_average = list(os.getloadavg())
    return result


def _overrides(settings: list[str]) -> dict[str, dict[str, Any]]:
    """``P1.conversations=20`` → ``{"P1": {"conversations": 20}}`` (values read as JSON)."""
    overrides: dict[str, dict[str, Any]] = {}
    for setting in settings:
        target, _, raw = setting.partition("=")
        name, _, key = target.partition(".")
        scenario = SCENARIOS.get(name.upper())
        if scenario is None or key not in scenario.full or not raw:
            raise SystemExit(f"python -m bench: --set {setting}: no such parameter")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides.setdefault(scenario.id, {})[key] = value
    return overrides


def _log(text: str) -> None:
    print(text, flush=True)


async def _main(args: argparse.Namespace, names: list[str]) -> int:
    started_at = datetime.now(UTC)
    document: dict[str, Any] = {
        "suite": "switchboard-bench",
        "schema": 1,
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
        "mode": "quick" if args.quick else "full",
        "runs_per_scenario": args.runs,
        "machine": machine(),
        "pinning": plan().to_json(),
        "revision": revision(),
        "scenarios": {},
    }
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    results = []
    try:
        for name in names:
            result = await _run_scenario(name, args, workdir)
            results.append(result)
            document["scenarios"][name] = result.to_json()
            document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            write_json(args.json, document)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(results))
    print(f"\nresults: {args.json}")
    return 1 if any(r.error is not None for r in results) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.runs < 1:
        print("python -m bench: --runs must be at least 1", file=sys.stderr)
        return 2
    names = _selected(args.only)
    args.overrides = _overrides(args.set)
    raise_fd_limit()
    pinned = pin_bench()
    if pinned.server is not None:
        print(f"server on core {pinned.server}, the bench on core {pinned.driver}", flush=True)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_main(args, names))


def _loop_factory() -> Any:
    # The clients run on uvloop where it is installed (uvicorn[standard] brings it),
    # so that the bench's own overhead stays small beside the server's.
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())

"""The machine a run was on, the table it prints, and the JSON it writes."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.cores import plan
from bench.harness import ROOT
from bench.scenario import Figure, Params, Scenario

PACKAGES = ("uvicorn", "starlette", "websockets", "anyio", "sqlalchemy", "uvloop", "httptools")


def revision() -> dict[str, Any]:
    """The commit measured, and the files that differed from it (outside ``bench/``)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    changed = [
        line[3:]
        for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
        if not line[3:].startswith(("bench/", "docs/BENCHMARKS", "docs/benchmarks-"))
    ]
    return {"commit": git("rev-parse", "HEAD") or None, "changed_files": changed}


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and Python, from ``/proc`` and :mod:`platform`."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                "",
            )
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            mem_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": model or platform.processor(),
        "cores": os.cpu_count(),
        "cores_usable": len(plan().usable),
        "memory_gib": round(mem_kib / 2**20, 1),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "load_average_at_start": list(os.getloadavg()),
    }


@dataclass
class ScenarioResult:
    scenario: Scenario
    params: Params
    runs: list[dict[str, float]] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    error: str | None = None
    revision: dict[str, Any] = field(default_factory=dict)
    load_average: list[float] = field(default_factory=list)
    """The machine's load average (1, 5, 15 min) when the scenario ended: the bench
    shares the cores with whatever else runs."""

    @property
    def met(self) -> bool | None:
        figure = self.figures.get(self.scenario.target.metric)
        if figure is None or self.error is not None:
            return None
        return self.scenario.target.met(figure.median)

    def to_json(self) -> dict[str, Any]:
        target = self.scenario.target
        return {
            "title": self.scenario.title,
            "params": dict(self.params),
            "target": {
                "metric": target.metric,
                "op": target.op.value,
                "value": target.value,
                "unit": self.scenario.unit(target.metric),
            },
            "met": self.met,
            "error": self.error,
            "revision": self.revision,
            "load_average_at_end": self.load_average,
            "metrics": {
                m.name: {"unit": m.unit, "what": m.what, **self.figures[m.name].to_json()}
                for m in self.scenario.metrics
                if m.name in self.figures
            },
        }


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if value == 0 or abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table(results: list[ScenarioResult]) -> str:
    """The figures as a plain-text table: each scenario's target metric first."""
    header = ("id", "metric", "median", "spread (min–max)", "unit", "target", "met")
    rows: list[tuple[str, ...]] = []
    for result in results:
        scenario = result.scenario
        if result.error is not None:
            rows.append((scenario.id, "error", "", "", "", "", result.error[:60]))
        ordered = sorted(scenario.metrics, key=lambda m: m.name != scenario.target.metric)
        first = True
        for metric in ordered:
            figure = result.figures.get(metric.name)
            if figure is None:
                continue
            is_target = metric.name == scenario.target.metric
            met = "" if not is_target or result.met is None else ("yes" if result.met else "NO")
            rows.append(
                (
                    scenario.id if first else "",
                    metric.name,
                    _number(figure.median),
                    f"{_number(figure.min)}–{_number(figure.max)}"
                    + (f" ({figure.missing} run(s) without)" if figure.missing else ""),
                    metric.unit,
                    scenario.target.describe(metric.unit) if is_target else "",
                    met,
                )
            )
            first = False
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    temporary.replace(path)


def markdown(document: dict[str, Any]) -> str:
    """A results JSON (as :func:`write_json` wrote it) as a Markdown table."""
    rows = [
        "| id | metric | median | spread (min–max) | target | met |",
        "|---|---|--:|--:|---|---|",
    ]
    for name, scenario in document["scenarios"].items():
        target = scenario["target"]
        if scenario["error"]:
            rows.append(f"| {name} | error | | | | {scenario['error']} |")
        metrics = sorted(scenario["metrics"].items(), key=lambda kv: kv[0] != target["metric"])
        for i, (metric, figure) in enumerate(metrics):
            unit = f" {figure['unit']}" if figure["unit"] else ""
            is_target = metric == target["metric"]
            goal = f"{target['op']} {target['value']:g}{unit}" if is_target else ""
            met = ("yes" if scenario["met"] else "**no**") if is_target else ""
            missing = sum(1 for v in figure["runs"] if v is None)
            spread = f"{_number(figure['min'])}–{_number(figure['max'])}"
            if missing:
                spread += f" ({missing} run(s) without)"
            label = f"**{metric}**" if is_target else metric
            rows.append(
                f"| {name if i == 0 else ''} | {label} | {_number(figure['median'])}{unit} "
                f"| {spread} | {goal} | {met} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description="Print a results JSON as a Markdown table."
    )
    parser.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    print(markdown(json.loads(args.results.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()

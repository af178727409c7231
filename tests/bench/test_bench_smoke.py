"""The benchmark suite runs end to end in its smallest mode and writes its JSON.

No timing is asserted: the figures depend on the machine. What a user of
``python -m bench`` relies on is asserted instead — the command runs a real server,
exits 0, prints the table and writes every scenario's metrics as positive numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.profile import read

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_quick_run_writes_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    profiles = tmp_path / "profiles"
    command = [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--only", "P3,P6"]
    done = subprocess.run(
        [*command, "--json", str(out), "--profile", str(profiles)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all_terminal_ms" in done.stdout
    assert "replay_ms" in done.stdout

    document = json.loads(out.read_text())
    # The servers sampled themselves in their measured windows (bench/sampler.py).
    for label in ("P3", "P6"):
        (profile,) = profiles.glob(f"{label}*.txt")
        stacks = read(profile)
        assert stacks
        assert all(n > 0 for _, n in stacks)

    assert document["mode"] == "quick"
    assert document["runs_per_scenario"] == 1
    assert document["machine"]["cores"] >= 1
    assert set(document["scenarios"]) == {"P3", "P6"}

    cancel = document["scenarios"]["P3"]
    assert cancel["error"] is None
    assert cancel["target"] == {
        "metric": "all_terminal_ms",
        "op": "<",
        "value": 100.0,
        "unit": "ms",
    }
    assert isinstance(cancel["met"], bool)
    for name in ("all_terminal_ms", "result_ms", "all_cancelling_ms"):
        figure = cancel["metrics"][name]
        assert figure["median"] > 0
        assert figure["min"] <= figure["median"] <= figure["max"]
        assert len(figure["runs"]) == 1
    assert cancel["metrics"]["tasks"]["median"] == 111

    resume = document["scenarios"]["P6"]
    assert resume["error"] is None
    assert resume["target"]["metric"] == "replay_ms"
    for name in ("replay_ms", "connect_to_welcome_ms", "events_per_s"):
        assert resume["metrics"][name]["median"] > 0


# Each of P8, P9, P10: its figure, and metrics that are positive on any server.
STORM_GC_MEMORY = {
    "P8": ("all_caught_up_s", ("caught_up_p99_s", "open_per_s", "server_cpu_ms_per_open")),
    "P9": ("full_pause_max_ms", ("full_pause_p50_ms", "tracked_objects", "tracked_per_socket")),
    # P10's figure is a difference: below zero on a server that holds nothing.
    "P10": ("kib_held", ("conversation_kib", "traced_mib")),
}


# About 40 s alone; the margin is for a machine busy with other work.
@pytest.mark.timeout(120)
def test_quick_run_of_the_storm_the_collector_and_a_live_conversation(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--only", "P8,P9,P10"]
    done = subprocess.run(
        [*command, "--set", "P8.sockets=200", "--set", "P9.sockets=200", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    document = json.loads(out.read_text())
    assert set(document["scenarios"]) == set(STORM_GC_MEMORY)
    for name, (figure, positive) in STORM_GC_MEMORY.items():
        scenario = document["scenarios"][name]
        assert scenario["error"] is None, name
        assert scenario["target"]["metric"] == figure
        assert isinstance(scenario["metrics"][figure]["median"], float)
        for metric in positive:
            assert scenario["metrics"][metric]["median"] > 0, (name, metric)
    storm = document["scenarios"]["P8"]["metrics"]
    assert storm["failed"]["median"] == 0
    assert storm["events_replayed"]["median"] == 200 * 3
    assert document["scenarios"]["P9"]["metrics"]["sockets"]["median"] == 200

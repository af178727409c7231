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

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_quick_run_writes_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--only", "P3,P6"]
    done = subprocess.run(
        [*command, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all_terminal_ms" in done.stdout
    assert "replay_ms" in done.stdout

    document = json.loads(out.read_text())
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

"""The browser clients' own logic, in Node's test runner: ``node --test tests/js``.

The widget's delivery (each seq once and in order, gap fill, reconnect, requests), its
Markdown subset and its task cards' arithmetic are checked without a browser; the
end-to-end tests in ``tests/e2e/test_browser.py`` drive the same code in Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_the_widget_logic_passes_in_node() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed; CI=true requires the widget's unit tests to run")
        pytest.skip("node is not installed")
    files = sorted(str(p) for p in HERE.glob("*.test.mjs"))
    assert files, "no widget unit tests found"
    done = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=50, check=False
    )
    summary = [line for line in done.stdout.splitlines() if line.startswith(("# pass", "# fail"))]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "# fail 0" in summary, summary
    assert not any(line == "# pass 0" for line in summary), summary

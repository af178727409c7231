"""The demo workspace's file, shipped in the package: the first example of the format."""

from __future__ import annotations

import functools
from pathlib import Path

from agents.workspace_file import WorkspaceSpec, load_workspace_file

DEMO_FILE = Path(__file__).with_name("workspace.toml")
"""``agents/demo/workspace.toml``: applied in demo mode like any other workspace file."""


@functools.cache
def demo_spec() -> WorkspaceSpec:
    """The demo workspace as its file declares it (read once)."""
    return load_workspace_file(DEMO_FILE)

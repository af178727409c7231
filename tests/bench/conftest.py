"""The Channels peer's venv, built once per session (PyPI) into the bench's cache."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from bench.peers.channels_peer import channels_python


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires the Channels peer to run")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def peer_python() -> Path:
    """The peer venv's interpreter: a skip without redis-server or PyPI, a failure under
    CI=true. The first session builds the venv (about 15 s); later ones reuse it."""
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed (apt-get install redis-server)")
    try:
        return asyncio.run(channels_python(log=lambda _line: None))
    except RuntimeError as exc:
        _unavailable(f"the Channels peer's venv could not be built: {exc}")


@pytest.fixture
def anyio_backend() -> str:
    # The bench's harness and the websockets client are asyncio's.
    return "asyncio"

"""Shared fixtures: every async test runs on asyncio and on Trio unless marked otherwise."""

from __future__ import annotations

import os
import shutil

import pytest

from bridges.speech import EspeakSynthesizer


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def espeak() -> EspeakSynthesizer:
    """espeak-ng, the phone bridge's text-to-speech (a skip without it; a failure under CI=true)."""
    if shutil.which("espeak-ng") is None:
        reason = "espeak-ng is not installed (apt-get install espeak-ng)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires the speech tests to run")
        pytest.skip(reason)
    return EspeakSynthesizer()

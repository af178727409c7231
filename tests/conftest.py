"""Shared fixtures: every async test runs on asyncio and on Trio unless marked otherwise."""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator

import pytest

from bridges.speech import EspeakSynthesizer


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Each phase's report on the test item (``item.report_call``), for fixtures that
    tell more when the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed_test(request: pytest.FixtureRequest) -> bool:
    """Whether the test that *request* belongs to failed (in a fixture's teardown)."""
    report = getattr(request.node, "report_call", None)
    return bool(report is not None and report.failed)


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

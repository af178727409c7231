"""Fixtures shared by the server's tests."""

from __future__ import annotations

import os

import psycopg
import pytest

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test database's SQLAlchemy URL, once it has answered.

    Skips the test when PostgreSQL is unreachable; fails it instead when ``CI=true``,
    where a skipped PostgreSQL test would hide a broken build.
    """
    try:
        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), connect_timeout=3):
            pass
    except psycopg.Error as exc:
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires PostgreSQL tests to run")
        pytest.skip(reason)
    return POSTGRES_URL

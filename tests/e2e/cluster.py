"""Several real nodes: their own ``redis-server`` and their own PostgreSQL database.

The shared Redis at 6379 is never touched: each test that needs Redis starts one on a
free port, and may kill it, restart it on the same port, or pause it with SIGSTOP.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ..conftest import failed_test
from .conftest import POSTGRES_URL, ServerProcess, free_port


@dataclass
class RedisProcess:
    """A ``redis-server`` child on a free port, with nothing saved to disk."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.folder / f"redis-{self.port}.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.folder),
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path)
    redis.start()
    yield redis
    if redis.process is not None:
        redis.resume()
        redis.kill()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of its own on the PostgreSQL server, dropped afterwards.

    Skips without PostgreSQL; fails instead when ``CI=true``.
    """
    plain = POSTGRES_URL.replace("+psycopg", "")
    name = f"nodes_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(plain, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires PostgreSQL tests to run")
        pytest.skip(reason)
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(plain, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_process: RedisProcess,
    postgres_database: str,
) -> Iterator[Any]:
    """``cluster(n, **env)``: *n* more real nodes on one database and one Redis.

    When the test fails, each node's log (its last 200 lines) is printed at teardown,
    where pytest shows it with the failure: a takeover that did not come says why there.
    """
    nodes: list[ServerProcess] = []

    def start(count: int = 1, **env: str) -> list[ServerProcess]:
        started = []
        for _ in range(count):
            node = ServerProcess(
                postgres_database,
                {"REDIS_URL": redis_process.url, "SWITCHBOARD_LEASE_SECONDS": "1", **env},
            )
            node.env.setdefault("SWITCHBOARD_NODE_ID", f"node-{len(nodes)}")
            node.log_path = tmp_path / f"node-{len(nodes)}.log"
            node.start()
            nodes.append(node)
            started.append(node)
        return started

    yield start
    for node in nodes:
        if node.process is not None:
            node.stop(signal.SIGKILL)
    if failed_test(request):
        for node in nodes:
            tail = "\n".join(node.logs().splitlines()[-200:])
            print(f"--- {node.env['SWITCHBOARD_NODE_ID']}'s log, last 200 lines ---\n{tail}")

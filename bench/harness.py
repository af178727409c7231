"""The bench's side of the server: start it in its own process, read its memory, stop it.

Each run of a scenario gets a fresh server (``python -m bench.server``) on a free port
and its own SQLite file, so no run inherits another's tasks, conversations or heap.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cores import pin_server
from bench.workspace import BENCH_WORKSPACE
from server.auth import issue_token
from server.settings import DEVELOPMENT_SECRET

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0

# The per-socket rate limit (20 frames/s by default) is a policy, not a cost: left on,
# P4 would measure the limit. Every other setting keeps its default.
BENCH_ENV = {
    "SWITCHBOARD_RATE_LIMIT": "1000000",
    "SWITCHBOARD_RATE_LIMIT_BURST": "1000000",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def person_token(person: str, *, ttl: float = 4 * 3600) -> str:
    """A person's token in the bench workspace, signed with the development secret."""
    return issue_token(
        DEVELOPMENT_SECRET, workspace=BENCH_WORKSPACE, sub=person, role="person", ttl=ttl
    )


@dataclass
class ServerProcess:
    """One ``python -m bench.server`` child (or *module*'s) on *database*; its pid is the
    server's. It runs pinned to the server's core (:mod:`bench.cores`)."""

    database: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    module: tuple[str, ...] = ("bench.server",)
    """What runs: ``python -m MODULE… --port P``; ``("server", "serve")`` is the demo."""
    python: str = sys.executable
    """The interpreter: another venv's for a peer (:mod:`bench.peers`)."""
    cwd: Path = ROOT

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        env = {
            **os.environ,
            "PORT": str(self.port),
            "DATABASE_URL": f"sqlite:///{self.database}",
            "SWITCHBOARD_NODE_ID": f"bench-{self.port}",
            **BENCH_ENV,
            **self.env,
        }
        env.pop("SWITCHBOARD_SECRET", None)  # the development secret: demo tokens work
        env.pop("REDIS_URL", None)  # the embedded default: the in-process bus
        if self.python != sys.executable:
            env.pop("PYTHONPATH", None)  # another venv imports none of this tree
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                *self.module,
                "--port",
                str(self.port),
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=log,
            )
        pin_server(self.process.pid)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"the bench server exited: {self.tail()}")
            try:
                status, _ = await http_json("GET", f"{self.http}/readyz")
                if status == 200:
                    # Again, for any thread started before the first pin took hold.
                    pin_server(self.process.pid)
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the bench server did not become ready: {self.tail()}")

    async def stop(self) -> None:
        """SIGTERM (graceful: sockets closed 1001, tasks interrupted), SIGKILL if stuck."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    def rss_kib(self) -> int:
        """The server's resident set (``VmRSS`` of ``/proc/<pid>/status``), in KiB."""
        return proc_status_kib(self.pid, "VmRSS")

    def cpu_seconds(self) -> float:
        """CPU time the server has used, all threads (``/proc/<pid>/stat``)."""
        return process_cpu_seconds(self.pid)

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def create_conversation(self, person: str) -> tuple[str, str]:
        """``POST /v1/conversations`` as *person*; returns (conversation_id, chat_id)."""
        status, body = await http_json(
            "POST", f"{self.http}/v1/conversations", {}, token=person_token(person)
        )
        if status != 201:
            raise RuntimeError(f"POST /v1/conversations answered {status}: {body}")
        return str(body["conversation_id"]), str(body["chat_id"])


def process_cpu_seconds(pid: int) -> float:
    """CPU time process *pid* has used, all threads (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


async def http_json(
    method: str, url: str, body: Any = None, *, token: str | None = None, read_timeout: float = 10.0
) -> tuple[int, Any]:
    """One HTTP request with the standard library, in a worker thread."""

    def request() -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=read_timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    return await asyncio.to_thread(request)


def copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database consistently (the backup API, WAL included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    # sqlite3's context manager commits but does not close.
    src.close()
    dst.close()

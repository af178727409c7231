"""End-to-end fixtures: a real ``switchboard serve`` (uvicorn) on a free port.

The server runs in its own process, on a SQLite file (or PostgreSQL), and is driven
with the ``websockets`` client and ``httpx`` like any other client would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.auth import issue_token
from server.settings import DEVELOPMENT_SECRET

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A ``switchboard serve`` child process; restartable on the same database."""

    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "PORT": str(self.port),
            "DATABASE_URL": self.database_url,
            "SWITCHBOARD_TOOL_LATENCY_SCALE": "0.05",
            "SWITCHBOARD_NODE_ID": f"e2e-{self.port}",
            **self.env,
        }
        if "SWITCHBOARD_SECRET" not in self.env:
            env.pop("SWITCHBOARD_SECRET", None)  # demo mode, on the development secret
        assert self.log_path is not None
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *(["/tmp/e2e_launch/launch.py"] if os.environ.get("E2E_TMP_LAUNCH") else ["-m", "server"]), "serve", "--port", str(self.port)],  # TMPHACK
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.logs()[-2000:]}")
            try:
                if httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.logs()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[ServerProcess] = []

    def make(database_url: str | None = None, **env: str) -> ServerProcess:
        url = database_url or f"sqlite:///{tmp_path / 'switchboard.db'}"
        server = ServerProcess(url, dict(env))
        server.log_path = tmp_path / f"server-{len(servers)}.log"
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        if server.process is not None:
            server.stop(signal.SIGKILL)


@pytest.fixture
def server(server_factory: Any) -> ServerProcess:
    return server_factory()  # type: ignore[no-any-return]


def token(sub: str = "pat", *, workspace: str = "demo", role: str = "person", **kw: Any) -> str:
    return issue_token(DEVELOPMENT_SECRET, workspace=workspace, sub=sub, role=role, **kw)


def headers(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


async def start_conversation(server: ServerProcess, tok: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=server.http) as client:
        answer = await client.post("/v1/conversations", json={}, headers=headers(tok))
        assert answer.status_code == 201, answer.text
        return dict(answer.json())


class Wire:
    """A protocol client over a real socket that remembers every frame it received."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []
        self._next_id = 0

    async def send(self, frame: dict[str, Any]) -> str:
        self._next_id += 1
        frame = {"id": f"c{self._next_id}", **frame}
        await self.socket.send(json.dumps(frame))
        return str(frame["id"])

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        import anyio

        with anyio.fail_after(timeout):
            frame = json.loads(await self.socket.recv())
        self.frames.append(frame)
        return dict(frame)

    async def until(self, predicate: Any, timeout: float = 15) -> dict[str, Any]:
        """Receive until a frame matches *predicate*; returns it."""
        import anyio

        with anyio.fail_after(timeout):
            while True:
                frame = await self.recv(timeout)
                if predicate(frame):
                    return frame

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f and f.get("type") in ("message", "task")]


@pytest.fixture
def anyio_backend() -> str:
    # uvicorn and the websockets client are asyncio's.
    return "asyncio"


@asynccontextmanager
async def open_wire(
    url: str, tok: str, *, resume_after: int | None = None, client: str = "widget"
) -> AsyncIterator[Wire]:
    async with connect(url, max_size=2**20) as socket:
        wire = Wire(socket)
        hello: dict[str, Any] = {"type": "hello", "token": tok, "client": client}
        if resume_after is not None:
            hello["resume_after"] = resume_after
        await socket.send(json.dumps(hello))
        welcome = await wire.recv()
        assert welcome["type"] == "welcome", welcome
        yield wire

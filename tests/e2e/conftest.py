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
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.auth import issue_token
from server.settings import DEVELOPMENT_SECRET

from .protocol_check import check_stream, check_welcome

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
    #: RLIMIT_NOFILE (soft, hard) the server starts with; the test runner's if None.
    open_files: tuple[int, int] | None = None

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
        # The child keeps its own copy of the descriptor; ours is closed at once.
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                preexec_fn=None if self.open_files is None else self._limit_open_files,
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

    def _limit_open_files(self) -> None:
        import resource

        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

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

    def make(
        database_url: str | None = None, open_files: tuple[int, int] | None = None, **env: str
    ) -> ServerProcess:
        url = database_url or f"sqlite:///{tmp_path / 'switchboard.db'}"
        server = ServerProcess(url, dict(env), open_files=open_files)
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


@pytest.fixture(scope="module")
def shared_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Servers shared by the tests of one module, one per environment asked for.

    For tests that neither stop the server nor count what is on it: each works in its
    own conversation, so sharing only saves the start-up.
    """
    folder = tmp_path_factory.mktemp("shared")
    servers: dict[tuple[tuple[str, str], ...], ServerProcess] = {}

    def get(**env: str) -> ServerProcess:
        key = tuple(sorted(env.items()))
        if key not in servers:
            n = len(servers)
            server = ServerProcess(f"sqlite:///{folder / f'switchboard-{n}.db'}", dict(env))
            server.log_path = folder / f"server-{n}.log"
            server.start()
            servers[key] = server
        return servers[key]

    yield get
    for server in servers.values():
        if server.process is not None:
            server.stop(signal.SIGKILL)


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
        self.welcome: dict[str, Any] = {}
        self.close_code: int | None = None
        self._next_id = 0

    async def send(self, frame: dict[str, Any]) -> str:
        self._next_id += 1
        frame = {"id": f"c{self._next_id}", **frame}
        await self.socket.send(json.dumps(frame))
        return str(frame["id"])

    async def recv(self, within: float = 10) -> dict[str, Any]:
        import anyio

        with anyio.fail_after(within):
            frame = json.loads(await self.socket.recv())
        self.frames.append(frame)
        return dict(frame)

    async def until(self, predicate: Any, within: float = 15) -> dict[str, Any]:
        """Receive until a frame matches *predicate*; returns it."""
        import anyio

        with anyio.fail_after(within):
            while True:
                frame = await self.recv(within)
                if predicate(frame):
                    return frame

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f and f.get("type") in ("message", "task")]

    # -- conveniences built on the three above ----------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest stream ``seq`` received so far (0 if none): what to resume after."""
        return max((int(e["seq"]) for e in self.events()), default=0)

    async def request(self, frame: dict[str, Any], within: float = 15) -> dict[str, Any]:
        """Send *frame* and return its answer (the ``ack``, ``result``, ``error`` or ``pong``)."""
        frame_id = await self.send(frame)
        return await self.until(
            lambda f: f.get("id") == frame_id and f.get("type") in ANSWER_TYPES, within
        )

    async def wait(self, condition: Callable[[Wire], Any], within: float = 15) -> Any:
        """Receive until *condition* (called with this wire) is truthy; return its value.

        The condition sees every frame received so far, so it holds whether what it
        waits for came before or after the call.
        """
        import anyio

        with anyio.fail_after(within):
            while True:
                value = condition(self)
                if value:
                    return value
                await self.recv(within)

    async def say(self, text: str, within: float = 15) -> int:
        """Say *text*; return the ``seq`` the ack gave the stored user message.

        Asserts what the person sees: an ``ack`` whose ``seq`` is that of their own
        message in the stream.
        """
        ack = await self.request({"type": "say", "text": text}, within)
        assert ack["type"] == "ack", ack
        seq = ack.get("seq")
        assert type(seq) is int, ack
        mine = await self.wait(lambda w: next((e for e in w.events() if e["seq"] == seq), None))
        assert (mine["type"], mine["role"], mine["kind"], mine["text"]) == (
            "message",
            "user",
            "reply",
            text,
        ), mine
        return seq

    async def message(self, *, since: int = 0, within: float = 15, **fields: Any) -> dict[str, Any]:
        """The first ``message`` event after seq *since* whose fields match *fields*
        (see :func:`is_message`), waiting for it if it has not come yet."""
        return dict(
            await self.wait(
                lambda w: next((m for m in w.messages(**fields) if m["seq"] > since), None),
                within,
            )
        )

    async def task_state(self, task_id: str, *states: str, within: float = 15) -> dict[str, Any]:
        """The first TaskView of *task_id* in one of *states*, waiting for it if need be."""
        return dict(
            await self.wait(
                lambda w: next((v for v in w.views(task_id) if v["state"] in states), None),
                within,
            )
        )

    def views(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """The TaskViews of the ``task`` events received so far (of *task_id* only)."""
        return [
            dict(f["task"])
            for f in self.events()
            if f["type"] == "task" and (task_id is None or f["task"]["id"] == task_id)
        ]

    def task_ids(self) -> list[str]:
        """The tasks this stream has shown, in the order they first appeared."""
        return list(dict.fromkeys(view["id"] for view in self.views()))

    def messages(self, **fields: Any) -> list[dict[str, Any]]:
        return [f for f in self.events() if is_message(f, **fields)]

    async def closed(self, within: float = 15) -> int | None:
        """Receive until the server closes the socket; return its close code."""
        import anyio
        from websockets.exceptions import ConnectionClosed

        with anyio.fail_after(within):
            try:
                while True:
                    await self.recv(within)
            except ConnectionClosed as exc:
                self.close_code = exc.rcvd.code if exc.rcvd is not None else None
        return self.close_code


ANSWER_TYPES = frozenset({"ack", "result", "error", "pong"})


def is_message(frame: dict[str, Any], **fields: Any) -> bool:
    """Whether *frame* is a ``message`` event with these field values.

    A callable value is a predicate on the field (``text=lambda t: "Bob" in t``).
    """
    if frame.get("type") != "message" or "seq" not in frame:
        return False
    for name, wanted in fields.items():
        value = frame.get(name)
        if callable(wanted):
            if value is None or not wanted(value):
                return False
        elif value != wanted:
            return False
    return True


@pytest.fixture
def anyio_backend() -> str:
    # uvicorn and the websockets client are asyncio's.
    return "asyncio"


@asynccontextmanager
async def open_wire(
    url: str,
    tok: str,
    *,
    resume_after: int | None = None,
    client: str = "widget",
    check: bool = True,
    chat_id: str | None = None,
) -> AsyncIterator[Wire]:
    """A greeted socket; on a clean exit every stream event it received is checked.

    The check (:func:`protocol_check.check_stream`) runs after the block's own
    assertions, so a failing test reports the behaviour first and the contract second.
    """
    async with connect(url, max_size=2**20) as socket:
        wire = Wire(socket)
        hello: dict[str, Any] = {"type": "hello", "token": tok, "client": client}
        if resume_after is not None:
            hello["resume_after"] = resume_after
        await socket.send(json.dumps(hello))
        welcome = await wire.recv()
        assert welcome["type"] == "welcome", welcome
        check_welcome(welcome)
        wire.welcome = welcome
        yield wire
    if check:
        check_stream(wire.frames, after=resume_after or 0, chat_id=chat_id, voice=client == "voice")
        chats = {e["chat_id"] for e in wire.events()}
        assert len(chats) <= 1, f"one socket streamed several chats: {chats}"


def conversation_ws(server: ServerProcess, conversation_id: str) -> str:
    return f"{server.ws}/v1/conversations/{conversation_id}/ws"


def chat_ws(server: ServerProcess, chat_id: str) -> str:
    return f"{server.ws}/v1/chats/{chat_id}/ws"


async def fetch_events(
    server: ServerProcess, tok: str, path: str, *, after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """Every stored event of ``path`` (``/v1/conversations/ID/events`` or a chat's) after
    *after*, page by page, oldest first."""
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        while True:
            answer = await client.get(
                path, params={"after": after, "limit": limit}, headers=headers(tok)
            )
            assert answer.status_code == 200, answer.text
            page = answer.json()["events"]
            events.extend(page)
            if len(page) < limit:
                return events
            after = int(page[-1]["seq"])


async def fetch_task(server: ServerProcess, tok: str, task_id: str) -> dict[str, Any]:
    """The owner's ``GET /v1/tasks/{id}``: one TaskView."""
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        answer = await client.get(f"/v1/tasks/{task_id}", headers=headers(tok))
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["task"])


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A database URL on PostgreSQL whose tables land in a fresh schema, dropped after.

    Skips without PostgreSQL; fails instead when ``CI=true``, where a skipped
    PostgreSQL test would hide a broken build.
    """
    import secrets

    import psycopg

    plain = POSTGRES_URL.replace("+psycopg", "")
    schema = f"e2e_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(plain, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires PostgreSQL tests to run")
        pytest.skip(reason)
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="session")
def local_model_url() -> Iterator[str]:
    """A real small model (SmolLM2-135M through llama.cpp's OpenAI-compatible server)
    on loopback, shared by the session's tests; skips without it, fails under CI."""
    from server import local_model

    try:
        local_model.model_path()
        import xllamacpp  # noqa: F401
    except (local_model.LocalModelError, ImportError) as exc:
        reason = f"the local model is not installed ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires the LLM brain's tests to run")
        pytest.skip(reason)
    with local_model.started(threads=1) as url:
        yield url

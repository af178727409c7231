"""``python -m bench.failover``: failover time and the relay's cost, on real nodes.

::

    python -m bench.failover [--runs N] [--lease SECONDS] [--says N] [--json PATH]

Each run starts its own ``redis-server`` (a free port, nothing saved), its own
PostgreSQL database (``createdb``-style, dropped after; PostgreSQL at
127.0.0.1:5432) and two ``switchboard serve`` nodes on the demo workspace. Then:

1. ``say → reply`` with the socket on the conversation's home, *says* times;
2. the same with the socket on the other node (every command relayed to the home);
3. the home has three calls running; kill -9 of it; the time until the socket on the
   other node has the interruption notice, and until a new ``say`` there is answered.

Prints one JSON object: per-run figures and their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from websockets.asyncio.client import ClientConnection, connect

from server.auth import issue_token
from server.settings import DEVELOPMENT_SECRET

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
OUTREACH = "Reach every patient who hasn't completed onboarding"
HOURS = "What are your opening hours?"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Socket:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self._n = 0

    async def send(self, frame: dict[str, Any]) -> str:
        self._n += 1
        frame = {"id": f"b{self._n}", **frame}
        await self.connection.send(json.dumps(frame))
        return str(frame["id"])

    async def until(self, predicate: Any, within: float = 30) -> dict[str, Any]:
        for frame in self.frames:
            if predicate(frame):
                return frame
        async with asyncio.timeout(within):
            while True:
                frame = json.loads(await self.connection.recv())
                self.frames.append(frame)
                if predicate(frame):
                    return dict(frame)

    async def turn(self, text: str) -> float:
        """``say`` → the agent's reply to it, in seconds."""
        started = time.perf_counter()
        frame_id = await self.send({"type": "say", "text": text})
        ack = await self.until(lambda f: f.get("id") == frame_id)
        if ack.get("type") != "ack":
            raise RuntimeError(f"say answered {ack}")

        seq = int(ack["seq"])
        await self.until(
            lambda f: (
                f.get("type") == "message"
                and f.get("role") == "agent"
                and f.get("kind") == "reply"
                and int(f.get("seq", 0)) > seq
            )
        )
        return time.perf_counter() - started


async def _open(url: str, token: str, resume_after: int = 0) -> tuple[Any, _Socket]:
    manager = connect(url, max_size=2**20)
    connection = await manager.__aenter__()
    sock = _Socket(connection)
    hello = {"type": "hello", "token": token, "resume_after": resume_after}
    await connection.send(json.dumps(hello))
    await sock.until(lambda f: f.get("type") == "welcome")
    return manager, sock


def _node(
    folder: Path,
    database: str,
    redis_port: int,
    name: str,
    lease: float,
    command: tuple[str, ...] = ("server", "serve"),
    extra_env: dict[str, str] | None = None,
) -> Any:
    port = _free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": database.replace("postgresql://", "postgresql+psycopg://"),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "SWITCHBOARD_NODE_ID": name,
        "SWITCHBOARD_LEASE_SECONDS": str(lease),
        "SWITCHBOARD_TOOL_LATENCY_SCALE": "1",
        **(extra_env or {}),
    }
    env.pop("SWITCHBOARD_SECRET", None)
    log = (folder / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", *command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"node {name} did not become ready")


@dataclass
class _Cluster:
    folder: Path
    database: str
    redis: subprocess.Popen[bytes]
    nodes: list[tuple[subprocess.Popen[bytes], int]] = field(default_factory=list)

    def stop(self) -> None:
        for process, _ in self.nodes:
            if process.poll() is None:
                process.kill()
            process.wait()
        self.redis.kill()
        self.redis.wait()
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {self.database} WITH (FORCE)")


def _start_cluster(
    lease: float,
    names: tuple[str, ...] = ("bench-a", "bench-b"),
    command: tuple[str, ...] = ("server", "serve"),
    extra_env: dict[str, str] | None = None,
) -> _Cluster:
    folder = Path(tempfile.mkdtemp(prefix="failover-"))
    database = f"bench_{secrets.token_hex(5)}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    redis_port = _free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cluster = _Cluster(folder, database, redis)
    try:
        time.sleep(0.3)
        url = f"{POSTGRES}/{database}"
        for name in names:
            node = _node(folder, url, redis_port, name, lease, command, extra_env)
            cluster.nodes.append(node)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_conversation(port: int, token: str) -> str:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/conversations",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    return str(answer.json()["conversation_id"])


async def one_run(lease: float, says: int) -> dict[str, float]:
    cluster = await asyncio.to_thread(_start_cluster, lease)
    try:
        (a, port_a), (_, port_b) = cluster.nodes
        token = issue_token(DEVELOPMENT_SECRET, workspace="demo", sub="pat", role="person")
        conversation = await asyncio.to_thread(_start_conversation, port_a, token)
        path = f"/v1/conversations/{conversation}/ws"
        home_manager, home = await _open(f"ws://127.0.0.1:{port_a}{path}", token)
        on_home = [await home.turn(HOURS) for _ in range(says)]
        await home.turn(OUTREACH)
        last = max(int(f.get("seq", 0)) for f in home.frames)
        manager, far = await _open(f"ws://127.0.0.1:{port_b}{path}", token, resume_after=last)
        relayed = [await far.turn(HOURS) for _ in range(says)]
        await home_manager.__aexit__(None, None, None)
        killed = time.perf_counter()
        a.send_signal(signal.SIGKILL)
        await far.until(
            lambda f: f.get("type") == "message" and f.get("kind") == "notice", within=lease * 5
        )
        noticed = time.perf_counter() - killed
        await far.turn(HOURS)
        answered = time.perf_counter() - killed
        await manager.__aexit__(None, None, None)
        return {
            "say_reply_home_p50_ms": statistics.median(on_home) * 1000,
            "say_reply_relayed_p50_ms": statistics.median(relayed) * 1000,
            "say_reply_home_max_ms": max(on_home) * 1000,
            "say_reply_relayed_max_ms": max(relayed) * 1000,
            "failover_notice_s": noticed,
            "failover_answered_s": answered,
        }
    finally:
        await asyncio.to_thread(cluster.stop)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--says", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    runs = [await one_run(args.lease, args.says) for _ in range(args.runs)]
    report({"lease_seconds": args.lease}, runs, args.json)
    return 0


def report(about: dict[str, Any], runs: list[dict[str, float]], path: Path | None) -> None:
    """Print (and with *path*, write) the runs and each figure's median as one JSON object."""
    summary = {
        **about,
        "runs": runs,
        "median": {key: statistics.median(run[key] for run in runs) for key in runs[0]},
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if path is not None:
        path.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

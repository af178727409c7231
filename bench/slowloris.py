"""``python -m bench.slowloris``: ``/healthz`` and a WebSocket client while half-open
connections hold the server.

::

    python -m bench.slowloris [--connections 1000] [--seconds 20] [--open-files 1024]
                              [--json PATH]

Starts ``switchboard serve`` on a SQLite file in a temporary directory with its open-files
limit (soft and hard, so it cannot raise it) at ``--open-files``, then measures, each
for ``--seconds``:

1. before: ``/healthz`` every 100 ms, each on a new connection;
2. during: the same while ``--connections`` attackers each hold a connection that sent
   part of a request head and sends one more byte a second, opening a new one a second
   after the server closes theirs (what slowloris does); and a WebSocket client that
   connects, says something and waits for the reply, over and over.

Prints one JSON object: ``/healthz`` latency (median, p99, max, in ms) and failures
before and during, the WebSocket client's say → reply times, how many connections the
attackers held at the end and how many the server closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import connect

from server.auth import issue_token
from server.settings import DEVELOPMENT_SECRET

ROOT = Path(__file__).resolve().parents[1]
HOURS = "What are your opening hours?"
# A request head cut short: no blank line ever follows.
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nX-a: "
# A complete WebSocket upgrade, after which the client never says hello.
SILENT_UPGRADE = (
    b"GET /v1/conversations/conv_silent/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


@dataclass
class Slowloris:
    """*connections* half-open requests against ``host:port``, held until cancelled.

    With ``silent_sockets`` each completes a WebSocket upgrade instead and then sends
    nothing, holding the socket until the server closes it.
    """

    host: str
    port: int
    connections: int
    drip_every: float = 1.0
    silent_sockets: bool = False
    holding: int = 0
    opened: int = 0
    closed_by_server: int = 0
    refused: int = 0
    all_opened: anyio.Event = field(default_factory=anyio.Event)
    """Set once *connections* connections have been opened (not all need be open)."""

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Open the connections and keep them open until cancelled."""
        async with anyio.create_task_group() as tg:
            for _ in range(self.connections):
                tg.start_soon(self._attacker)
            task_status.started()

    async def _attacker(self) -> None:
        while True:
            try:
                stream = await anyio.connect_tcp(self.host, self.port)
            except OSError:
                self.refused += 1
                await anyio.sleep(self.drip_every)
                continue
            self.opened += 1
            self.holding += 1
            if self.opened >= self.connections:
                self.all_opened.set()
            try:
                if self.silent_sockets:
                    await stream.send(SILENT_UPGRADE)
                    while True:
                        # The 101, maybe a close frame, then the end.
                        await stream.receive()
                await stream.send(PARTIAL_HEAD)
                while True:
                    with anyio.move_on_after(self.drip_every):
                        # Anything the server sends (a 408, or the end) means it let go.
                        await stream.receive()
                        break
                    await stream.send(b"a")
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
            finally:
                self.holding -= 1
                with anyio.move_on_after(1, shield=True):
                    await stream.aclose()
            # Not reached when cancelled: only the server's closes are counted.
            self.closed_by_server += 1
            await anyio.sleep(self.drip_every)


async def healthz_latencies(base_url: str, seconds: float, every: float = 0.1) -> dict[str, Any]:
    """``GET /healthz`` on a new connection every *every* seconds for *seconds*."""
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
                answer = await client.get("/healthz")
            if answer.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures += 1
        except httpx.HTTPError:
            failures += 1
        await anyio.sleep(every)
    return {"requests": len(latencies) + failures, "failures": failures, **summary(latencies)}


def summary(latencies_ms: list[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return {"median_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(latencies_ms)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "max_ms": round(ordered[-1], 1),
    }


async def say_and_wait(http: str, ws: str, tok: str) -> float:
    """Open a conversation, connect, say something, wait for the reply; the time taken."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=http, timeout=10) as client:
        answer = await client.post(
            "/v1/conversations", json={}, headers={"Authorization": f"Bearer {tok}"}
        )
        answer.raise_for_status()
        conversation = answer.json()["conversation_id"]
    async with connect(f"{ws}/v1/conversations/{conversation}/ws") as socket:
        await socket.send(json.dumps({"type": "hello", "token": tok, "client": "widget"}))
        assert json.loads(await socket.recv())["type"] == "welcome"
        await socket.send(json.dumps({"type": "say", "id": "s1", "text": HOURS}))
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "message" and frame.get("role") == "agent":
                return (time.perf_counter() - started) * 1000


@dataclass
class _Clients:
    times_ms: list[float] = field(default_factory=list)
    failures: int = 0


async def _keep_saying(http: str, ws: str, clients: _Clients) -> None:
    tok = issue_token(DEVELOPMENT_SECRET, workspace="demo", sub="pat", role="person")
    while True:
        try:
            with anyio.fail_after(15):
                clients.times_ms.append(await say_and_wait(http, ws, tok))
        except (TimeoutError, OSError, httpx.HTTPError) as exc:
            print(f"client failed: {type(exc).__name__}", file=sys.stderr)
            clients.failures += 1
        await anyio.sleep(0.5)


async def measure(
    port: int, connections: int, seconds: float, *, silent: bool = False
) -> dict[str, Any]:
    http = f"http://127.0.0.1:{port}"
    ws = f"ws://127.0.0.1:{port}"
    before = await healthz_latencies(http, seconds)
    attack = Slowloris("127.0.0.1", port, connections, silent_sockets=silent)
    clients = _Clients()
    async with anyio.create_task_group() as tg:
        await tg.start(attack.run)
        # Let the attackers connect before measuring.
        await attack.all_opened.wait()
        await anyio.sleep(1)
        tg.start_soon(_keep_saying, http, ws, clients)
        during = await healthz_latencies(http, seconds)
        held = attack.holding
        tg.cancel_scope.cancel()
    return {
        "healthz_before": before,
        "healthz_during": during,
        "client_say_to_reply_during": {
            "runs": len(clients.times_ms),
            "failures": clients.failures,
            **summary(clients.times_ms),
        },
        "attack": {
            "connections": connections,
            "kind": "silent WebSocket upgrades" if silent else "partial request heads",
            "held_at_end": held,
            "opened": attack.opened,
            "closed_by_server": attack.closed_by_server,
            "refused": attack.refused,
        },
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slowloris")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--open-files", type=int, default=1024)
    parser.add_argument(
        "--silent-sockets",
        action="store_true",
        help="attack with WebSocket upgrades that never say hello instead",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    # The attackers need a descriptor each, beyond what the server is allowed.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = args.open_files
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-slowloris-") as work:
        env = {
            **os.environ,
            "PORT": str(port),
            "DATABASE_URL": f"sqlite:///{work}/switchboard.db",
            "SWITCHBOARD_TOOL_LATENCY_SCALE": "0.05",
        }
        env.pop("SWITCHBOARD_SECRET", None)
        log_path = Path(work) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
            )
        try:
            _wait_ready(port)
            result = asyncio.run(
                measure(port, args.connections, args.seconds, silent=args.silent_sockets)
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    result["server"] = {
        "open_files": limit,
        "errors_logged": sum(1 for line in lines if line["level"] in ("ERROR", "CRITICAL")),
        "drop_lines": [
            {k: v for k, v in line.items() if k.startswith("dropped_")}
            for line in lines
            if line["message"] == "slow clients dropped"
        ],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become ready")


if __name__ == "__main__":
    sys.exit(main())

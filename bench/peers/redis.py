"""A ``redis-server`` of the bench's own: a free port, nothing saved, stopped after.

A peer whose channel layer is Redis gets one per run; the shared Redis (6379) is never
touched. It runs on the server's core, as part of the server side.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.cores import pin_server
from bench.harness import free_port, process_cpu_seconds

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@dataclass
class RedisServer:
    port: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)


@asynccontextmanager
async def redis_server(workdir: Path, log_path: Path) -> AsyncIterator[RedisServer]:
    """Start ``redis-server`` on a free loopback port; yield it once it answers PING.

    Raises ``RuntimeError`` when there is no ``redis-server`` or it does not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (the Debian package redis-server)")
    port = free_port()
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            stdout=log,
            stderr=log,
        )
    pin_server(process.pid)
    server = RedisServer(port, process)
    try:
        await _wait_ready(server)
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_ready(server: RedisServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.returncode is not None:
            raise RuntimeError(f"redis-server exited ({server.process.returncode})")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                if await reader.readline() == b"+PONG\r\n":
                    return
            finally:
                writer.close()
                await writer.wait_closed()
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING")

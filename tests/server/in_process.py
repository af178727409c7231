"""uvicorn serving an app in the test's own event loop, on a free port of loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import uvicorn


@asynccontextmanager
async def running(config_for: Callable[[int], uvicorn.Config]) -> AsyncIterator[int]:
    """Serve ``config_for(port)`` until the block ends; yields the port once started."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(config_for(port))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [listener])
        with anyio.fail_after(20):
            while not server.started:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        try:
            yield port
        finally:
            server.should_exit = True

"""Frames sent in batches (server.websocket_protocol), over real uvicorn and a real client.

A batch must reach the client as the very frames ``websocket.send`` would have sent one
by one — each text its own frame, in order, whatever it holds — and a server without
the extension must still get every frame.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import uvicorn
from websockets.asyncio.client import connect

from server.slow_clients import QuickCloseWebSocketProtocol
from server.websocket_protocol import (
    SEND_BATCH,
    BatchingWebSocketProtocol,
    batches_supported,
    send_texts,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
]

TEXTS = [
    json.dumps({"seq": n, "text": "ü" * (n % 7) + "x" * (n * 37 % 70_000)}) for n in range(1, 401)
]

App = Callable[[Any, Any, Any], Awaitable[None]]


@asynccontextmanager
async def serving(app: App, protocol: type) -> AsyncIterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app, ws=protocol, lifespan="off", log_config=None, access_log=False, ws_max_size=2**20
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [listener])
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        try:
            yield f"ws://127.0.0.1:{port}/"
        finally:
            server.should_exit = True


def sender(seen: dict[str, Any]) -> App:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        seen["batched"] = batches_supported(scope)
        # In three batches (one of them empty), the way a replay sends its pages.
        await send_texts(send, TEXTS[:150], batched=seen["batched"])
        await send_texts(send, [], batched=seen["batched"])
        await send_texts(send, TEXTS[150:], batched=seen["batched"])
        await send({"type": "websocket.close", "code": 1000})

    return app


async def received_frames(url: str) -> list[str]:
    frames: list[str] = []
    async with connect(url, max_size=2**20) as websocket:
        async for frame in websocket:
            assert isinstance(frame, str)
            frames.append(frame)
    return frames


async def test_a_batch_arrives_as_its_frames_one_by_one_in_order() -> None:
    seen: dict[str, Any] = {}
    async with serving(sender(seen), BatchingWebSocketProtocol) as url:
        frames = await received_frames(url)
    assert seen["batched"] is True
    assert frames == TEXTS


async def test_without_the_extension_every_frame_still_arrives() -> None:
    seen: dict[str, Any] = {}
    async with serving(sender(seen), QuickCloseWebSocketProtocol) as url:
        frames = await received_frames(url)
    assert seen["batched"] is False
    assert frames == TEXTS


async def test_a_batch_to_a_client_that_left_raises_an_os_error() -> None:
    # The socket's tasks treat an OSError as the client gone (server.sockets).
    outcome: dict[str, Any] = {}
    left = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await left.wait()
        with anyio.fail_after(5):
            while (await receive())["type"] != "websocket.disconnect":
                pass
        try:
            await send({"type": SEND_BATCH, "texts": TEXTS[:3]})
        except OSError as exc:
            outcome["error"] = exc

    async with serving(app, BatchingWebSocketProtocol) as url:
        async with connect(url):
            pass
        left.set()
        with anyio.fail_after(5):
            while "error" not in outcome:  # noqa: ASYNC110
                await anyio.sleep(0.01)
    assert isinstance(outcome["error"], OSError)

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
import anyio.lowlevel
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from server.slow_clients import QuickCloseWebSocketProtocol
from server.websocket_protocol import (
    SEND_BATCH,
    BatchingWebSocketProtocol,
    ReceivedMessages,
    WritableFlag,
    batches_supported,
    send_texts,
)

from .in_process import running

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
    def config(port: int) -> uvicorn.Config:
        return uvicorn.Config(
            app, ws=protocol, lifespan="off", log_config=None, access_log=False, ws_max_size=2**20
        )

    async with running(config) as port:
        yield f"ws://127.0.0.1:{port}/"


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


def send_now_of(scope: Any) -> Callable[[list[str]], bool]:
    send_now: Callable[[list[str]], bool] = scope["extensions"][SEND_BATCH]["send_now"]
    return send_now


async def test_send_now_writes_at_once_in_order_with_batches() -> None:
    outcome: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        send_now = send_now_of(scope)
        outcome["before_accept"] = send_now(["too soon"])
        await send({"type": "websocket.accept"})
        outcome["written"] = [send_now(TEXTS[:10]), send_now([TEXTS[10]])]
        await send_texts(send, TEXTS[11:], batched=True)
        await send({"type": "websocket.close", "code": 1000})
        outcome["after_close"] = send_now(["too late"])

    async with serving(app, BatchingWebSocketProtocol) as url:
        frames = await received_frames(url)
    assert frames == TEXTS
    assert outcome == {"before_accept": False, "written": [True, True], "after_close": False}


def lagging_client(url: str) -> tuple[socket.socket, ClientProtocol]:
    """A client that upgrades, then reads nothing until told: a small receive buffer,
    so that the server's buffers fill after a few megabytes."""
    client = ClientProtocol(parse_uri(url), max_size=2**20)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("ws://").rstrip("/").split(":")
    sock.connect((host, int(port)))
    client.send_request(client.connect())
    sock.sendall(b"".join(client.data_to_send()))
    while client.handshake_exc is None and not client.events_received():
        client.receive_data(sock.recv(4096))
    return sock, client


def read_to_close(sock: socket.socket, client: ClientProtocol) -> list[str]:
    texts: list[str] = []
    with sock:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return texts
            client.receive_data(data)
            for event in client.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    texts.append(bytes(event.data).decode())
            sock.sendall(b"".join(client.data_to_send()))  # the close's answer


async def test_send_now_refuses_while_the_client_is_behind_and_loses_nothing() -> None:
    # Once the kernel's buffers and then the transport's fill, send_now writes nothing
    # and says so; the usual send waits for the client and goes on in order.
    big = ["x" * 60_000 + str(n) for n in range(1000)]
    outcome: dict[str, Any] = {"written": 0}
    refused = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        send_now = send_now_of(scope)
        for text in big:
            if not send_now([text]):
                refused.set()
                break
            outcome["written"] += 1
            await anyio.lowlevel.checkpoint()
        await send_texts(send, big[outcome["written"] :], batched=True)
        await send({"type": "websocket.close", "code": 1000})

    async with serving(app, BatchingWebSocketProtocol) as url:
        sock, client = await anyio.to_thread.run_sync(lagging_client, url)
        with anyio.fail_after(20):
            await refused.wait()
        frames = await anyio.to_thread.run_sync(read_to_close, sock, client)
    assert 0 < outcome["written"] < len(big)
    assert frames == big


async def test_received_messages_wait_in_order_and_a_cancelled_wait_takes_nothing() -> None:
    messages = ReceivedMessages()
    got: list[Any] = []

    async def reader() -> None:
        got.append(await messages.get())
        got.append(await messages.get())

    with anyio.move_on_after(0.05):
        await messages.get()  # cancelled while waiting: it leaves no waiter behind
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.sleep(0.01)
        messages.put_nowait("first")
        messages.put_nowait("second")
    assert got == ["first", "second"]
    assert messages.empty()
    messages.put_nowait("third")
    assert messages.qsize() == 1
    assert await messages.get() == "third"


async def test_the_writable_flag_wakes_every_waiter_and_a_set_flag_does_not_wait() -> None:
    flag = WritableFlag()
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await flag.wait()
        woken.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(waiter, n)
        await anyio.sleep(0.01)
        assert woken == []
        flag.set()
    assert sorted(woken) == [0, 1, 2]
    with anyio.fail_after(1):
        assert await flag.wait()
    flag.clear()
    assert not flag.is_set()


async def test_a_frame_sent_before_the_handshakes_answer_is_still_read() -> None:
    # A client may not send frames before the 101, but one that does loses nothing:
    # the parser that has read part of it is kept (it is started anew only at rest).
    # (A frame in the very segment of the request stalls uvicorn's own protocol too.)
    received: dict[str, Any] = {}
    requested = anyio.Event()
    early = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        requested.set()
        await early.wait()
        await send({"type": "websocket.accept"})
        received["message"] = await receive()
        await send({"type": "websocket.send", "text": "after"})
        await send({"type": "websocket.close", "code": 1000})

    frame = Frame(Opcode.TEXT, b'{"early":true}').serialize(mask=True, extensions=[])
    async with serving(app, BatchingWebSocketProtocol) as url:
        client = ClientProtocol(parse_uri(url), max_size=2**20)
        sock = socket.create_connection(("127.0.0.1", parse_uri(url).port))
        client.send_request(client.connect())
        request = b"".join(client.data_to_send())
        with sock:
            sock.sendall(request)
            await requested.wait()
            sock.sendall(frame[:2])  # its header: read by the parser, gone from its buffer
            await anyio.sleep(0.05)
            early.set()  # accepted now, with the rest of the frame still to come
            await anyio.sleep(0.05)
            sock.sendall(frame[2:])
            frames = await anyio.to_thread.run_sync(read_to_close, sock, client)
    assert received["message"] == {"type": "websocket.receive", "text": '{"early":true}'}
    assert frames == ["after"]


async def test_frames_after_the_handshake_are_read_by_a_parser_started_anew() -> None:
    # The usual case: nothing before the 101, so the parser that held the request is
    # replaced; every frame after it, split across segments, is read as sent.
    received: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            received.append(message["text"])

    async with (
        serving(app, BatchingWebSocketProtocol) as url,
        connect(url, max_size=2**20) as websocket,
    ):
        for text in TEXTS[:50]:
            await websocket.send(text)
    assert received == TEXTS[:50]

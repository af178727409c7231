"""A client that stops reading (PROTOCOL.md: the outbox is bounded), on real uvicorn.

The app runs in this process on the server's own uvicorn options, so that the test can
append events to the chat through the node's store and bus, as a conversation does,
faster than any conversation would. The client is a raw socket with a small receive
buffer that upgrades, says ``hello`` and then reads nothing: the kernel's buffers
fill, then the transport's, then the socket's outbox, and the server closes it with
4001. When it reads again it finds every event it was sent in ``seq`` order, then
the 4001; resuming from its last ``seq`` brings the rest. The server is unharmed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from agents.models import Author, Message, MessageKind, MessageRole
from agents.ports import Changes, NewEvent
from server.app import create_app
from server.auth import issue_token
from server.node import Node
from server.protocol import CloseCode
from server.serving import uvicorn_config
from server.settings import DEVELOPMENT_SECRET, Settings
from server.slow_clients import WEBSOCKET_CLOSE_TIMEOUT_S
from server.websocket_protocol import BatchingWebSocketProtocol

from .in_process import running

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
]

BATCH = 1000
TEXT = "x" * 1000  # a kilobyte a message: the buffers fill after a few thousand


@asynccontextmanager
async def serving(database: Path) -> AsyncIterator[tuple[str, Node]]:
    apps: list[Starlette] = []

    def config(port: int) -> uvicorn.Config:
        settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{database}", "PORT": str(port)})
        apps.append(create_app(settings))
        return uvicorn_config(apps[0], settings, loop="asyncio")

    async with running(config) as port:
        yield f"127.0.0.1:{port}", apps[0].state.node


def lagging_client(url: str, token: str) -> tuple[socket.socket, ClientProtocol, dict[str, Any]]:
    """Upgrade, say hello, read the welcome; from then on read nothing until told."""
    client = ClientProtocol(parse_uri(url), max_size=2**22)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = parse_uri(url).host, parse_uri(url).port
    sock.connect((host, port))
    client.send_request(client.connect())
    sock.sendall(b"".join(client.data_to_send()))
    while True:
        client.receive_data(sock.recv(4096))
        events = client.events_received()
        if any(isinstance(e, Frame) for e in events) or client.handshake_exc is not None:
            break
        if events:  # the handshake's answer: now the hello
            client.send_text(json.dumps({"type": "hello", "token": token}).encode())
            sock.sendall(b"".join(client.data_to_send()))
    frame = next(e for e in events if isinstance(e, Frame))
    return sock, client, json.loads(bytes(frame.data))


def read_to_close(sock: socket.socket, client: ClientProtocol) -> tuple[list[dict[str, Any]], int]:
    frames: list[dict[str, Any]] = []
    with sock:
        sock.settimeout(30)
        while True:
            data = sock.recv(1 << 16)
            if not data:
                client.receive_eof()
            else:
                client.receive_data(data)
            for event in client.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    frames.append(json.loads(bytes(event.data)))
            sock.sendall(b"".join(client.data_to_send()))
            if not data or client.close_rcvd is not None:
                code = client.close_rcvd.code if client.close_rcvd is not None else 1006
                return frames, code


async def lagging_conversation(
    address: str, node: Node, person: str
) -> tuple[str, str, socket.socket, ClientProtocol, dict[str, Any], int]:
    """A conversation whose socket's client stops reading after the welcome, flooded
    with events until the server lets the socket go; its url and token, the client,
    its welcome, and the last seq published."""
    token = issue_token(DEVELOPMENT_SECRET, workspace="demo", sub=person, role="person")
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        answer = await http.post(
            "/v1/conversations", json={}, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 201, answer.text
    conversation = answer.json()
    chat_id, conversation_id = conversation["chat_id"], conversation["conversation_id"]
    url = f"ws://{address}/v1/conversations/{conversation_id}/ws"
    sock, client, welcome = await anyio.to_thread.run_sync(lagging_client, url, token)
    assert welcome["type"] == "welcome"
    author = Author(person, "Slow reader")
    published = 0
    with anyio.fail_after(60):
        while node.sessions.connections_of(f"demo/{person}"):
            events = [
                NewEvent(chat_id, Message(MessageRole.USER, author, MessageKind.REPLY, TEXT))
                for _ in range(BATCH)
            ]
            stored = await node.store.commit(Changes(events=events))
            await node.bus.publish("demo", stored)
            published = stored[-1].seq
            await anyio.sleep(0.01)
    return url, token, sock, client, welcome, published


async def test_a_client_that_stops_reading_is_closed_4001_and_loses_nothing(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "slow.db") as (address, node):
        url, token, sock, client, welcome, published = await lagging_conversation(
            address, node, "slow-reader"
        )
        # Longer than the server waits for a close to be written: it never waits for
        # room in the buffer, so the client still finds it when it reads again.
        await anyio.sleep(3)
        frames, code = await anyio.to_thread.run_sync(read_to_close, sock, client)
        assert code == CloseCode.SLOW_CONSUMER
        seqs = [f["seq"] for f in frames if "seq" in f]
        assert seqs == list(range(welcome["last_seq"] + 1, seqs[-1] + 1))  # in order, no gap
        assert seqs[-1] < published

        # Resuming from the last seq it has brings every event after it, in order.
        async with connect(url, max_size=2**22) as resumed:
            await resumed.send(
                json.dumps({"type": "hello", "token": token, "resume_after": seqs[-1]})
            )
            assert json.loads(await resumed.recv())["last_seq"] == published
            rest = [json.loads(await resumed.recv())["seq"] for _ in range(published - seqs[-1])]
        assert rest == list(range(seqs[-1] + 1, published + 1))


async def test_a_closed_client_that_takes_nothing_is_cut_off_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client closed 4001 that reads nothing of what is still buffered for it does not
    # hold its descriptor and buffers for as long as it stays connected.
    monkeypatch.setattr(BatchingWebSocketProtocol, "drain_grace", 1.0)
    async with serving(tmp_path / "mute.db") as (address, node):
        _, _, sock, client, _, _ = await lagging_conversation(address, node, "mute-reader")
        # The close's answer is awaited 2 s (WEBSOCKET_CLOSE_TIMEOUT_S), then the grace.
        await anyio.sleep(WEBSOCKET_CLOSE_TIMEOUT_S + 1.0 + 1.0)
        frames, code = await anyio.to_thread.run_sync(read_to_close, sock, client)
    # What the kernel had already taken still arrives, in order; then the connection
    # ends without the close frame that was left in the server's buffer (a client that
    # reads within the grace finds its 4001: the test above).
    assert code == 1006
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

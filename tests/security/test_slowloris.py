"""Slow clients against a real ``switchboard serve`` with a low open-files limit.

Half-open requests (slowloris) more numerous than the server's descriptors must never
stop ``/healthz`` or a well-behaved WebSocket client; sockets that never say hello are
capped the same way; a head or a body that never ends
is answered 408 and closed; the server raises its open-files limit at start and says so;
``/metrics`` counts the connections waiting and those closed.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.slowloris import PARTIAL_HEAD, Slowloris
from tests.e2e.conftest import (
    ServerProcess,
    conversation_ws,
    open_wire,
    start_conversation,
    token,
)
from tests.e2e.test_metrics import parse_exposition

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

HOURS = "What are your opening hours?"


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]


def open_files_line(server: ServerProcess) -> dict[str, Any]:
    (line,) = [x for x in log_lines(server) if x["message"] == "open files limit"]
    return line


def open_files_of(server: ServerProcess) -> tuple[int, int]:
    assert server.process is not None
    limits = Path(f"/proc/{server.process.pid}/limits").read_text()
    (row,) = [x for x in limits.splitlines() if x.startswith("Max open files")]
    soft, hard = row.split()[3:5]
    return int(soft), int(hard)


async def healthz(server: ServerProcess) -> tuple[float, int]:
    """``GET /healthz`` on a new connection: the seconds it took, and the attempts.

    A connection the server reset before reading it is tried once more, as a client
    would: at a limit this low, a burst of attackers larger than the free descriptors
    makes the event loop (libuv) accept and close what waits in the backlog.
    """
    started = time.perf_counter()
    for attempt in (1, 2):
        try:
            async with httpx.AsyncClient(base_url=server.http, timeout=5) as client:
                answer = await client.get("/healthz")
        except (httpx.RemoteProtocolError, httpx.ReadError):
            if attempt == 2:
                raise
            continue
        assert answer.status_code == 200
        return time.perf_counter() - started, attempt
    raise AssertionError("unreachable")


async def slow_client_figures(server: ServerProcess) -> dict[str, float]:
    """``/metrics``'s slow-client samples, by name and labels."""
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as client:
        answer = await client.get("/metrics")
    _, samples = parse_exposition(answer.text)
    return {k: v for k, v in samples.items() if k.startswith("switchboard_slow_clients_")}


async def fresh_client_is_answered(server: ServerProcess, tok: str) -> None:
    started = await start_conversation(server, tok)
    fresh_url = conversation_ws(server, started["conversation_id"])
    async with open_wire(fresh_url, tok, chat_id=started["chat_id"]) as fresh:
        asked = await fresh.say(HOURS)
        await fresh.message(since=asked, role="agent", kind="reply")


async def test_half_open_connections_never_lock_out_healthz_or_a_client(
    server_factory: Any,
) -> None:
    # 256 descriptors, which the server may not raise; 600 attackers, each holding a
    # request head cut short.
    server = server_factory(open_files=(256, 256))
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    attack = Slowloris("127.0.0.1", server.port, connections=600)
    async with (
        open_wire(url, tok, chat_id=conv["chat_id"]) as before,
        anyio.create_task_group() as attackers,
    ):
        await attackers.start(attack.run)
        with anyio.fail_after(20):
            await attack.all_opened.wait()
        # For 5 seconds, while dropped attackers come back: every /healthz answers.
        answers = []
        until = time.monotonic() + 5
        while time.monotonic() < until:
            answers.append(await healthz(server))
            await anyio.sleep(0.1)
        # A new client connects, is greeted and answered (trying again once if its
        # connection was reset, as for /healthz).
        for attempt in (1, 2):
            try:
                await fresh_client_is_answered(server, tok)
                break
            except (httpx.TransportError, OSError, InvalidHandshake, ConnectionClosed):
                if attempt == 2:
                    raise
        # The socket that was open before the attack is still served.
        assert (await before.request({"type": "ping"}))["type"] == "pong"
        attackers.cancel_scope.cancel()
    assert max(took for took, _ in answers) < 2.0, answers
    # Nearly all at the first attempt.
    assert sum(1 for _, attempts in answers if attempts > 1) <= len(answers) // 5, answers
    # The server let go of attackers to keep its descriptors: they did not all stay.
    assert attack.closed_by_server > 0
    limit = open_files_line(server)
    assert (limit["level"], limit["limit"], limit["hard_limit"]) == ("WARNING", 256, 256)
    assert limit["waiting"] == 64
    lines = log_lines(server)
    drops = [x for x in lines if x["message"] == "slow clients dropped"]
    assert drops, "no drop was logged"
    assert (drops[0]["level"], drops[0]["dropped_evicted"] > 0) == ("WARNING", True)
    assert [x for x in lines if x["level"] in ("ERROR", "CRITICAL")] == []


async def test_the_open_files_limit_is_raised_to_the_hard_limit(server_factory: Any) -> None:
    server = server_factory(open_files=(300, 8192))
    assert open_files_of(server) == (8192, 8192)
    line = open_files_line(server)
    assert (line["level"], line["limit"], line["hard_limit"]) == ("INFO", 8192, 8192)
    assert line["waiting"] == 2048  # a quarter of the descriptors, under the default cap


async def read_until_closed(stream: Any, drip: bytes | None, within: float) -> bytes:
    """What the server sends until it closes, sending *drip* every 0.2 s meanwhile."""
    received = b""
    with anyio.fail_after(within):
        while True:
            with anyio.move_on_after(0.2):
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return received
                continue
            if drip is not None:
                try:
                    await stream.send(drip)
                except (anyio.BrokenResourceError, OSError):
                    return received


async def test_a_head_or_body_that_never_ends_is_answered_408_and_closed(
    server_factory: Any,
) -> None:
    server = server_factory(
        SWITCHBOARD_HEAD_TIMEOUT_SECONDS="1", SWITCHBOARD_BODY_TIMEOUT_SECONDS="1"
    )
    # A head sent a byte at a time, never finished.
    started = time.monotonic()
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(PARTIAL_HEAD)
        answer = await read_until_closed(stream, b"a", within=5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.9 < time.monotonic() - started < 3
    # A body announced as 1,000 bytes, sent 10 and then a byte at a time.
    started = time.monotonic()
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(
            b"POST /v1/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + token().encode() + b"\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a": "   '
        )
        answer = await read_until_closed(stream, b" ", within=5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.9 < time.monotonic() - started < 3
    # A head larger than the limit is refused at once.
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: " + b"a" * 70_000)
        answer = await read_until_closed(stream, None, within=5)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    figures = await slow_client_figures(server)
    assert (
        figures['switchboard_slow_clients_dropped_total{kind="request",reason="head_timeout"}'] == 1
    )
    assert (
        figures['switchboard_slow_clients_dropped_total{kind="request",reason="body_timeout"}'] == 1
    )
    assert (
        figures['switchboard_slow_clients_dropped_total{kind="request",reason="head_too_large"}']
        == 1
    )
    assert figures['switchboard_slow_clients_dropped_total{kind="request",reason="evicted"}'] == 0
    # An idle keep-alive connection and a prompt request are untouched by all this.
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as client:
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
            await anyio.sleep(0.5)
    lines = log_lines(server)
    assert [x for x in lines if x["level"] in ("ERROR", "CRITICAL")] == []
    assert all("exc_frames" not in x for x in lines)
    drops = [x for x in lines if x["message"] == "slow clients dropped"]
    # The first drop is logged at once; later ones wait for the next line (10 s).
    assert [(x["level"], x["count"], x["dropped_head_timeout"]) for x in drops] == [
        ("WARNING", 1, 1)
    ]


async def test_sockets_that_never_say_hello_are_capped_oldest_first(server_factory: Any) -> None:
    server = server_factory(SWITCHBOARD_MAX_WAITING_REQUESTS="8")
    url = conversation_ws(server, "conv_silent")
    async with contextlib.AsyncExitStack() as stack:
        silent = [await stack.enter_async_context(connect(url)) for _ in range(8)]
        # All eight wait (the hello timeout is 10 s); a ninth closes the oldest at once.
        await anyio.sleep(0.3)
        assert [s.close_code for s in silent] == [None] * 8
        ninth = await stack.enter_async_context(connect(url))
        with anyio.fail_after(3):
            await silent[0].wait_closed()
        assert silent[0].close_code == 4401
        assert [s.close_code for s in silent[1:]] == [None] * 7
        figures = await slow_client_figures(server)
        assert figures['switchboard_slow_clients_waiting{kind="socket"}'] == 8
        assert (
            figures['switchboard_slow_clients_dropped_total{kind="socket",reason="evicted"}'] == 1
        )
        # A client that says hello at once is never the oldest: it is served.
        tok = token()
        conv = await start_conversation(server, tok)
        async with open_wire(
            conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
        ) as wire:
            assert (await wire.request({"type": "ping"}))["type"] == "pong"
        assert ninth.close_code is None
    lines = log_lines(server)
    drops = [x for x in lines if x["message"] == "slow clients dropped"]
    assert [(x["level"], x["dropped_evicted"], x["limit"]) for x in drops] == [("WARNING", 1, 8)]

"""Frames the server cannot take: each gets its error and the conversation goes on.

Only a frame over the size limit closes the socket (1009), and even then a resume
finds everything that was stored. An upgrade from a foreign ``Origin`` is refused
before it is accepted.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from .conftest import (
    ServerProcess,
    Wire,
    conversation_ws,
    fetch_events,
    open_wire,
    start_conversation,
    token,
)
from .protocol_check import check_error

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

LIMIT = 64 * 1024
HOURS = "What are your opening hours?"


def say_frame_of_size(size: int) -> str:
    """A ``say`` frame of exactly *size* bytes of UTF-8."""
    empty = json.dumps({"type": "say", "id": "big", "text": ""})
    frame = json.dumps({"type": "say", "id": "big", "text": "a" * (size - len(empty))})
    assert len(frame.encode()) == size
    return frame


async def error_for(wire: Wire, raw: str | bytes) -> dict[str, Any]:
    await wire.socket.send(raw)
    return await wire.until(lambda f: f.get("type") == "error")


# (what is sent, the error code, the id echoed): every way a frame can be refused.
BAD_FRAMES: list[tuple[str | bytes, str, str | None]] = [
    ("{this is not json", "bad_frame", None),
    ('[{"type": "ping", "id": "a1"}]', "bad_frame", None),
    ('{"type": "say", "id": "m1"}', "bad_frame", "m1"),
    ('{"id": "m2", "text": "hi"}', "bad_frame", "m2"),
    ('{"type": "say", "id": "w1", "text": 42}', "bad_frame", "w1"),
    ('{"type": "task.status", "id": "w2", "task_id": ["x"]}', "bad_frame", "w2"),
    ('{"type": "say", "id": 7, "text": "hi"}', "bad_frame", None),
    ('{"type": "launch", "id": "u1"}', "unknown_type", "u1"),
    # Said twice, read as neither: never as the last value (a stored user message).
    ('{"type": "ping", "id": "d1", "type": "say", "text": "hi"}', "bad_frame", None),
    (b"\x00\x01binary", "bad_frame", None),
]


async def test_each_bad_frame_gets_its_error_and_the_conversation_goes_on(
    shared_servers: Any,
) -> None:
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        hello = await wire.say("Hello")
        await wire.message(since=hello, role="agent", kind="reply")
        for raw, code, frame_id in BAD_FRAMES:
            before = wire.last_seq
            error = await error_for(wire, raw)
            try:
                check_error(error, code, id=frame_id)
            except AssertionError as exc:
                raise AssertionError(f"for {raw!r}: {exc}") from None
            # The socket stays open; nothing was stored for the bad frame, nothing lost.
            asked = await wire.say(HOURS)
            assert asked == before + 1, f"after {raw!r}"
            reply = await wire.message(since=asked, role="agent", kind="reply")
            assert "Monday to Friday" in reply["text"]
    stored = await fetch_events(server, tok, f"/v1/conversations/{conv['conversation_id']}/events")
    assert stored == wire.events()


async def test_many_bad_frames_in_a_row_then_a_fan_out(
    shared_servers: Any,
) -> None:
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        for raw in ("nope", "[]", "null", '"say"', "{}", b"\xff\xfe"):
            check_error(await error_for(wire, raw), "bad_frame", id=None)
        asked = await wire.say("Reach every patient who hasn't completed onboarding")
        assert asked == 1
        rollup = await wire.message(kind="followup", within=30)
        assert rollup["text"].startswith("Agent 1 called Alice")
    stored = await fetch_events(server, tok, f"/v1/conversations/{conv['conversation_id']}/events")
    assert stored == wire.events()


async def test_frame_over_the_limit_closes_1009_and_resume_loses_nothing(
    shared_servers: Any,
) -> None:
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as wire:
        hello = await wire.say("Hello")
        await wire.message(since=hello, role="agent", kind="reply")
        # Exactly the limit is not over it: refused (the text is too long), not closed.
        check_error(await error_for(wire, say_frame_of_size(LIMIT)), "too_large", id="big")
        pong = await wire.request({"type": "ping"})
        assert pong["type"] == "pong"
        seen = wire.last_seq
        await wire.socket.send(say_frame_of_size(LIMIT + 1))
        assert await wire.closed() == 1009

    async with open_wire(url, tok, resume_after=seen, chat_id=conv["chat_id"]) as back:
        assert back.welcome["last_seq"] == seen, "the oversized frame stored something"
        asked = await back.say(HOURS)
        assert asked == seen + 1
        await back.message(since=asked, role="agent", kind="reply")
    stored = await fetch_events(server, tok, f"/v1/conversations/{conv['conversation_id']}/events")
    assert stored == wire.events() + back.events()


async def test_foreign_origin_is_refused_before_accept(
    shared_servers: Any,
) -> None:
    server = shared_servers()
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    # The server's own page may connect.
    async with connect(url, origin=f"http://127.0.0.1:{server.port}") as socket:  # type: ignore[arg-type]
        await socket.send(json.dumps({"type": "hello", "token": tok, "client": "widget"}))
        welcome = json.loads(await socket.recv())
        assert welcome["type"] == "welcome"


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]


async def test_clients_that_leave_or_send_bad_utf8_are_no_server_errors(
    server_factory: Any,
) -> None:
    server = server_factory()
    tok = token()
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    # A chat longer than the server reads in its event loop's thread on opening (64
    # events, server.storage.sql_store.INLINE_MAX_FRAMES): its replay is read from a
    # worker thread, and a reset lands while it is under way.
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as wire:
        for _ in range(40):
            asked = await wire.say(HOURS)
            await wire.message(since=asked, role="agent", kind="reply")
    # Gone in the middle of the replay: the connection is reset right after hello, until
    # one reset has landed while the server was still sending.
    for _ in range(40):
        socket = await connect(url)
        await socket.send(json.dumps({"type": "hello", "token": tok, "resume_after": 0}))
        socket.transport.abort()
        await anyio.sleep(0.05)
        if any(line["message"] == "client went away" for line in log_lines(server)):
            break
    # A text frame that is not UTF-8: the server answers 1007 (RFC 6455).
    async with connect(url) as socket:
        hello = {"type": "hello", "token": tok, "resume_after": wire.last_seq}
        await socket.send(json.dumps(hello))
        assert json.loads(await socket.recv())["type"] == "welcome"
        socket.protocol.send_frame(Frame(Opcode.TEXT, b'{"type": "ping", "id": "\xff"}'))
        socket.send_data()
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1007
    async with open_wire(url, tok, resume_after=wire.last_seq) as back:
        assert (await back.request({"type": "ping"}))["type"] == "pong"
    lines = log_lines(server)
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    assert all("exc_frames" not in line for line in lines)
    gone = [line for line in lines if line["message"] == "client went away"]
    assert gone
    assert all(line["level"] == "INFO" and "close_code" in line for line in gone)
    bad = [line for line in lines if "UTF-8" in line["message"]]
    assert [(line["level"], line["close_code"]) for line in bad] == [("WARNING", 1007)]
    # A socket is logged once, by its access line: uvicorn's and websockets' two INFO
    # lines per socket opened are not written (their warnings and errors still are).
    per_socket = ("connection open", '%s - "WebSocket %s" [accepted]')
    assert [line for line in lines if line["message"] in per_socket] == []
    assert len([line for line in lines if line.get("method") == "WS"]) >= 2
    assert bad[0]["logger"] == "uvicorn.error.websocket"

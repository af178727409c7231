"""A socket lives no longer than its token (PROTOCOL.md, additions: sessions outlive no
token): expiry closes it with 4401, a ``refresh`` for the same principal extends it,
and a refresh with anyone else's token changes nothing and is audited as refused.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import (
    ServerProcess,
    Wire,
    chat_ws,
    conversation_ws,
    open_wire,
    start_conversation,
    token,
)

from .support import audit_rows, expired_token, forged_token

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

HOURS = "What are your opening hours?"
SHORT_TTL = 2.0


def short_token(sub: str = "pat", **kw: Any) -> tuple[str, float]:
    """A token of *sub* valid for about two seconds, and when it expires (epoch s)."""
    tok = token(sub, ttl=SHORT_TTL, **kw)
    from server.auth import verify_session_token
    from server.settings import DEVELOPMENT_SECRET

    return tok, verify_session_token(DEVELOPMENT_SECRET, tok).expires_at


async def closed_at(wire: Wire, within: float = 10) -> tuple[int | None, float]:
    code = await wire.closed(within)
    return code, time.time()


async def test_an_expired_token_closes_the_socket_with_4401(shared_servers: Any) -> None:
    server = shared_servers()
    tok, expires = short_token()
    conv = await start_conversation(server, token())
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        asked = await wire.say(HOURS)
        await wire.message(since=asked, role="agent", kind="reply")
        code, when = await closed_at(wire)
    assert code == 4401
    # Not before the token's expiry, and not long after it.
    assert expires - 0.05 <= when <= expires + 1.5, when - expires


async def test_nothing_is_served_on_an_expired_socket(shared_servers: Any) -> None:
    server = shared_servers()
    tok, expires = short_token()
    conv = await start_conversation(server, token())
    async with connect(conversation_ws(server, conv["conversation_id"])) as socket:
        await socket.send(json.dumps({"type": "hello", "token": tok, "client": "widget"}))
        wire = Wire(socket)
        assert (await wire.recv())["type"] == "welcome"
        await anyio.sleep(max(0.0, expires - time.time()) + 0.2)
        # A frame sent after expiry gets no answer: the socket closes instead.
        with contextlib.suppress(ConnectionClosed):
            await socket.send(json.dumps({"type": "task.list", "id": "late"}))
        with pytest.raises(ConnectionClosed):
            await wire.until(lambda f: f.get("id") == "late", within=3)
        assert socket.close_code == 4401
    assert not [f for f in wire.frames if f.get("id") == "late"]


async def test_refresh_for_the_same_person_keeps_the_socket_open(shared_servers: Any) -> None:
    server = shared_servers()
    tok, expires = short_token(name="Pat")
    conv = await start_conversation(server, token())
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        # A new display name is allowed: the principal is the same.
        fresh = token(ttl=60, name="Pat Doe")
        assert (await wire.request({"type": "refresh", "token": fresh}))["type"] == "ack"
        await anyio.sleep(max(0.0, expires - time.time()) + 1.0)
        assert (await wire.request({"type": "ping"}))["type"] == "pong"
        asked = await wire.say(HOURS)
        await wire.message(since=asked, role="agent", kind="reply")


async def test_a_voice_bridge_refreshes_with_its_service_token(shared_servers: Any) -> None:
    server = shared_servers()
    caller = token("caller-1")
    conv = await start_conversation(server, caller)
    tok, expires = short_token("bridge", role="service", act_for="caller-1")
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, client="voice"
    ) as wire:
        fresh = token("bridge", role="service", act_for="caller-1", ttl=60)
        assert (await wire.request({"type": "refresh", "token": fresh}))["type"] == "ack"
        await anyio.sleep(max(0.0, expires - time.time()) + 1.0)
        assert (await wire.request({"type": "ping"}))["type"] == "pong"


def refused_tokens() -> dict[str, str]:
    """Tokens a refresh must refuse on a socket of person ``pat``."""
    return {
        "another person": token("someone-else", ttl=60),
        "another workspace": token("pat", workspace="other", ttl=60),
        "another role": token("pat", role="agent", ttl=60),
        "a service for pat": token("svc", role="service", act_for="pat", ttl=60),
        "expired": expired_token("pat"),
        "forged": forged_token("pat"),
        "not a token": "not-a-jwt",
    }


async def test_refresh_with_anyone_elses_token_changes_nothing(
    server_factory: Any,
) -> None:
    server: ServerProcess = server_factory()
    tok, expires = short_token()
    conv = await start_conversation(server, token())
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        for label, other in refused_tokens().items():
            answer = await wire.request({"type": "refresh", "token": other})
            assert (answer["type"], answer.get("code")) == ("error", "unauthorized"), label
            assert other not in json.dumps(answer)
        # Still the old token's socket: it closes at that token's expiry.
        code, when = await closed_at(wire)
    assert code == 4401
    assert when <= expires + 1.5
    denied = [r for r in audit_rows(server) if r["channel"] == "ws:refresh"]
    assert len(denied) == len(refused_tokens())
    assert {(r["type"], r["outcome"], r["actor_id"]) for r in denied} == {
        ("ACCESS_DENIED", "4", "pat")  # FHIR: 4 is a minor failure
    }


async def test_a_watched_chat_closes_at_expiry_too(shared_servers: Any) -> None:
    server = shared_servers()
    owner = token()
    conv = await start_conversation(server, owner)
    tok, _ = short_token()
    async with open_wire(chat_ws(server, conv["chat_id"]), tok, client="viewer") as wire:
        assert (await wire.request({"type": "ping"}))["type"] == "pong"
        code, _ = await closed_at(wire)
    assert code == 4401

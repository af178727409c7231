"""Limits at the edge: a per-connection rate limit, a per-principal connection cap, and
the ``Origin`` check that refuses a browser page of another site before accept.

One server runs with a tight rate limit (5 frames a second, bursts of 5) and at most
two sockets per principal, as an operator would set them through the environment.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import (
    ServerProcess,
    Wire,
    chat_ws,
    conversation_ws,
    fetch_events,
    headers,
    start_conversation,
    token,
)

from .support import audit_head, random_id

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

LIMITS = {
    "SWITCHBOARD_RATE_LIMIT": "5",
    "SWITCHBOARD_RATE_LIMIT_BURST": "5",
    "SWITCHBOARD_MAX_CONNECTIONS_PER_PRINCIPAL": "2",
}


@pytest.fixture
def limited(shared_servers: Any) -> ServerProcess:
    return shared_servers(**LIMITS)  # type: ignore[no-any-return]


async def greet(socket: ClientConnection, tok: str) -> Wire:
    """Send ``hello`` and return the wire; the first frame it receives is the answer."""
    await socket.send(json.dumps({"type": "hello", "token": tok, "client": "viewer"}))
    return Wire(socket)


async def greeted(socket: ClientConnection, tok: str) -> Wire:
    wire = await greet(socket, tok)
    welcome = await wire.recv()
    assert welcome["type"] == "welcome", welcome
    return wire


async def test_a_flood_of_frames_closes_4429(limited: ServerProcess) -> None:
    tok = token("flooder")
    conv = await start_conversation(limited, tok)
    url = conversation_ws(limited, conv["conversation_id"])

    # Within the limit: a burst of five, a pause that refills the bucket, five more.
    async with connect(url) as socket:
        wire = await greeted(socket, tok)
        for _ in range(2):
            for n in range(5):
                await wire.send({"type": "ping", "id": f"p{n}"})
            for n in range(5):
                assert await wire.recv() == {"type": "pong", "id": f"p{n}"}
            await anyio.sleep(1.2)

    # Over it: the socket is closed with 4429 once the burst is spent, and what came
    # after the burst was not acted on. Bad frames count as much as good ones.
    async with connect(url) as socket:
        wire = await greeted(socket, tok)
        for n in range(30):
            frame = {"type": "say", "text": f"flood {n}"} if n % 2 else {"type": "nonsense"}
            try:
                await wire.send(frame)
            except ConnectionClosed:
                break
        assert await wire.closed() == 4429
    stored = await fetch_events(limited, tok, f"/v1/conversations/{conv['conversation_id']}/events")
    flood = [e["text"] for e in stored if e.get("role") == "user"]
    # Frames 0-4 fit the burst (two of them say something); a refill during the flood
    # could let one more through, never the rest.
    assert flood[:2] == ["flood 1", "flood 3"], flood
    assert len(flood) <= 3, flood

    # The limit is per connection: a new one starts with a full bucket.
    async with connect(url) as socket:
        wire = await greeted(socket, tok)
        assert await wire.request({"type": "ping"}) == {"type": "pong", "id": "c1"}


async def wait_for_slot(url: str, tok: str, within: float = 5) -> ClientConnection:
    """Connect until the server has counted a closed socket out (closing is asynchronous)."""
    with anyio.fail_after(within):
        while True:
            socket = await connect(url)
            wire = await greet(socket, tok)
            first = None
            with contextlib.suppress(ConnectionClosed):
                first = await wire.recv()
            if first is not None and first.get("type") == "welcome":
                return socket
            await socket.close()
            await anyio.sleep(0.1)


async def test_a_third_socket_of_one_principal_closes_4429(limited: ServerProcess) -> None:
    tok = token("capped")
    conv = await start_conversation(limited, tok)
    conversation_url = conversation_ws(limited, conv["conversation_id"])
    chat_url = chat_ws(limited, conv["chat_id"])

    async with connect(conversation_url) as first, connect(chat_url) as second:
        one, two = await greeted(first, tok), await greeted(second, tok)
        # Both kinds of socket count toward the same cap.
        async with connect(chat_url) as third:
            refused = await greet(third, tok)
            assert await refused.closed() == 4429
            assert not [f for f in refused.frames if f.get("type") == "welcome"], refused.frames

        # The two that were let in are unaffected.
        assert (await one.request({"type": "ping"}))["type"] == "pong"
        assert (await two.request({"type": "ping"}))["type"] == "pong"

        # The cap is per principal: someone else still gets in meanwhile.
        other = token("uncapped")
        theirs = await start_conversation(limited, other)
        async with connect(conversation_ws(limited, theirs["conversation_id"])) as socket:
            await greeted(socket, other)

        # Once one of the two closes, there is room again.
        await second.close()
        again = await wait_for_slot(chat_url, tok)
        await again.close()


# Pages of other sites, and hosts that only look like the allowed ones. ``{port}`` is
# the server's port, so each differs from an allowed origin by as little as possible.
FOREIGN_ORIGINS = [
    "https://evil.example",
    "null",
    "http://localhost:{port}.evil.example",
    "http://127.0.0.1.evil.example:{port}",
    "http://localhost.evil.example:{port}",
    "http://evil.example:{port}",
    "http://localhost:{port}@evil.example",
    "http://evil.example/http://127.0.0.1:{port}",
    "https://127.0.0.1:{port}",
    "http://127.0.0.1:{other_port}",
    "http://127.0.0.1",
    "http://127.0.0.2:{port}",
]


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
async def test_a_foreign_origin_is_refused_before_accept(
    limited: ServerProcess, origin: str
) -> None:
    tok = token("origin-owner")
    conv = await start_conversation(limited, tok)
    value = origin.format(port=limited.port, other_port=limited.port + 1)
    before = audit_head(limited)
    for url in (
        conversation_ws(limited, conv["conversation_id"]),
        chat_ws(limited, conv["chat_id"]),
        conversation_ws(limited, random_id("conv")),
    ):
        # Even with the owner's valid token on the upgrade itself.
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                url,
                origin=value,  # type: ignore[arg-type]
                additional_headers=headers(tok),
            ):
                pass
        assert refused.value.response.status_code == 403, (value, url)
    # Refused before anything was looked up: nothing for the trail to record.
    assert audit_head(limited) == before


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}"])
async def test_an_allowed_origin_is_let_in(limited: ServerProcess, origin: str) -> None:
    tok = token("origin-owner")
    conv = await start_conversation(limited, tok)
    value = origin.format(port=limited.port)
    async with connect(
        conversation_ws(limited, conv["conversation_id"]),
        origin=value,  # type: ignore[arg-type]
    ) as socket:
        wire = await greeted(socket, tok)
        assert wire.frames[0]["conversation_id"] == conv["conversation_id"]


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
async def test_a_foreign_page_may_not_read_the_api(limited: ServerProcess, origin: str) -> None:
    """The HTTP API answers a page of a foreign origin without letting its browser read
    the answer (no CORS grant), and refuses it the preflight a bearer token needs."""
    value = origin.format(port=limited.port, other_port=limited.port + 1)
    allowed = f"http://127.0.0.1:{limited.port}"
    async with httpx.AsyncClient(base_url=limited.http, timeout=15) as client:
        preflight = {
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        }
        refused = await client.options("/v1/chats", headers={"Origin": value, **preflight})
        assert "access-control-allow-origin" not in refused.headers, refused.headers
        granted = await client.options("/v1/chats", headers={"Origin": allowed, **preflight})
        assert granted.headers["access-control-allow-origin"] == allowed

        tok = headers(token("origin-owner"))
        answer = await client.get("/v1/chats", headers={"Origin": value, **tok})
        assert "access-control-allow-origin" not in answer.headers, answer.headers
        answer = await client.get("/v1/chats", headers={"Origin": allowed, **tok})
        assert answer.headers["access-control-allow-origin"] == allowed

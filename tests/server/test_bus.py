"""The Redis bus against a real Redis: two nodes' buses relay each other's events."""

from __future__ import annotations

import os

import anyio
import pytest

from agents.models import Author, Message, MessageKind, MessageRole, StreamEvent, utcnow
from server.bus import RedisBus, decode_events, encode_events

REDIS_URL = "redis://127.0.0.1:6379/15"


def _event(seq: int, text: str = "hello") -> StreamEvent:
    body = Message(MessageRole.AGENT, Author("a", "A"), MessageKind.REPLY, text, task_id="task_1")
    return StreamEvent("chat_x", seq, utcnow(), body)


def test_events_survive_the_wire_format() -> None:
    events = [_event(1), _event(2, "ünïcode — text")]
    node, decoded = decode_events(encode_events("n1", "demo", events))
    assert node == "n1"
    assert [e.to_wire() for e in decoded] == [e.to_wire() for e in events]
    with pytest.raises(ValueError, match="malformed"):
        decode_events('{"node": "x"}')


async def _redis_or_skip() -> None:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.ConnectionError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is required under CI=true: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")
    finally:
        await client.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis.asyncio is asyncio's
@pytest.mark.anyio
async def test_two_nodes_relay_each_others_events() -> None:
    await _redis_or_skip()
    a, b = RedisBus(REDIS_URL, "node-a"), RedisBus(REDIS_URL, "node-b")
    async with anyio.create_task_group() as tg:
        await tg.start(a.run)
        await tg.start(b.run)
        with a.subscribe(["chat_x"]) as on_a, b.subscribe(["chat_x"]) as on_b:
            await a.publish("demo", [_event(1), _event(2)])
            with anyio.fail_after(5):
                got_a = [await on_a.receive.receive() for _ in range(2)]
                got_b = [await on_b.receive.receive() for _ in range(2)]
            assert [e.seq for e in got_a] == [1, 2]
            assert [e.seq for e in got_b] == [1, 2]
            # A node never hears its own events twice.
            with anyio.move_on_after(0.3):
                extra = await on_a.receive.receive()
                pytest.fail(f"node a heard its own event again: {extra.seq}")
        tg.cancel_scope.cancel()


@pytest.mark.redis
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis.asyncio is asyncio's
@pytest.mark.anyio
async def test_a_workspace_listener_on_another_node_hears_that_workspace_only() -> None:
    await _redis_or_skip()
    a, b = RedisBus(REDIS_URL, "node-a"), RedisBus(REDIS_URL, "node-b")
    async with anyio.create_task_group() as tg:
        await tg.start(a.run)
        await tg.start(b.run)
        with b.subscribe_workspace("demo") as demo, b.subscribe_workspace("other") as other:
            await a.publish("demo", [_event(1)])
            await a.publish("elsewhere", [_event(2)])
            with anyio.fail_after(5):
                heard = await demo.receive.receive()
            assert heard.seq == 1
            with anyio.move_on_after(0.3):
                extra = await other.receive.receive()
                pytest.fail(f"another workspace's listener heard seq {extra.seq}")
            # After Redis was away, such a listener is ended: it reloads from the store.
            await b._catch_up()
            assert demo.overflowed
        tg.cancel_scope.cancel()

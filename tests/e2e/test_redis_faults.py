"""Redis going away — killed, restarted, or hung with SIGSTOP — under real nodes.

The nodes go on serving the conversations they home, say not-ready meanwhile, never
hold an ack for Redis, log no traceback or error text, and work again without a
restart once Redis is back.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest

from .cluster import RedisProcess, cluster, postgres_database, redis_process
from .conftest import ServerProcess, conversation_ws, open_wire, start_conversation, token

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.postgres]

__all__ = ["cluster", "postgres_database", "redis_process"]


async def readiness(node: ServerProcess) -> int:
    async with httpx.AsyncClient(base_url=node.http, timeout=10) as client:
        return (await client.get("/readyz")).status_code


async def wait_ready(node: ServerProcess, status: int, within: float = 15) -> None:
    with anyio.fail_after(within):
        while await readiness(node) != status:  # noqa: ASYNC110
            await anyio.sleep(0.1)


def assert_clean_logs(*nodes: ServerProcess) -> None:
    for node in nodes:
        logs = node.logs()
        assert "Traceback" not in logs
        for leak in ("Connection refused", "Error 111", "127.0.0.1:" + "6379", "Timeout reading"):
            assert leak not in logs, leak


async def timed_say(wire: Any, text: str) -> float:
    started = time.monotonic()
    seq = await wire.say(text)
    took = time.monotonic() - started
    await wire.message(since=seq, role="agent", kind="reply")
    return took


@pytest.mark.parametrize("fault", ["kill", "pause"])
async def test_a_home_serves_on_while_redis_is_away_and_recovers_after(
    cluster: Any, redis_process: RedisProcess, fault: str
) -> None:
    a, b = cluster(2)
    tok = token()
    conv = await start_conversation(a, tok)
    async with open_wire(conversation_ws(a, conv["conversation_id"]), tok) as wire:
        await timed_say(wire, "What are your opening hours?")
        if fault == "kill":
            redis_process.kill()
        else:
            redis_process.pause()
        # The home goes on: a turn is acked at once and answered, Redis or not.
        for _ in range(3):
            assert await timed_say(wire, "What are your opening hours?") < 1.0
        await wait_ready(a, 503)
        await wait_ready(b, 503)
        if fault == "kill":
            redis_process.start()
        else:
            redis_process.resume()
        await wait_ready(a, 200)
        await wait_ready(b, 200)
        assert await timed_say(wire, "What are your opening hours?") < 1.0
    # Both nodes serve new conversations again without a restart.
    for node in (a, b):
        conv2 = await start_conversation(node, tok)
        async with open_wire(conversation_ws(node, conv2["conversation_id"]), tok) as fresh:
            await timed_say(fresh, "What are your opening hours?")
    for node in (a, b):
        assert node.process is not None
        assert node.process.poll() is None, "a node exited"
    assert_clean_logs(a, b)


async def test_a_redis_restart_moves_no_conversation_and_interrupts_nothing(
    cluster: Any, redis_process: RedisProcess
) -> None:
    # Redis forgets every lease when it restarts: the homes must keep their
    # conversations, and a node with a socket on one must not take it over.
    a, b = cluster(2, SWITCHBOARD_TOOL_LATENCY_SCALE="2")
    tok = token()
    conv = await start_conversation(a, tok)
    async with open_wire(conversation_ws(a, conv["conversation_id"]), tok) as home:
        asked = await home.say("Reach every patient who hasn't completed onboarding")
        await home.message(since=asked, role="agent", kind="reply")
        ids = home.task_ids()
        async with open_wire(
            conversation_ws(b, conv["conversation_id"]), tok, resume_after=home.last_seq
        ) as wire:
            assert await home.closed() == 4409
            await wire.wait(
                lambda w: all(v["state"] == "working" for i in ids for v in w.views(i)[-1:])
            )
            redis_process.kill()
            await anyio.sleep(0.5)
            redis_process.start()
            await wait_ready(b, 200)
            # The relayed socket works again, and the work runs on to its end on a.
            hours = await wire.say("What are your opening hours?")
            await wire.message(since=hours, role="agent", kind="reply")
            await wire.message(kind="followup", within=40)
            for task_id in ids:
                ended = [v["state"] for v in wire.views(task_id) if v["state"] != "working"]
                assert ended[-1:] == ["completed"], ended
            assert wire.messages(kind="notice") == []
    assert_clean_logs(a, b)


async def test_a_relayed_socket_is_told_unavailable_while_redis_is_away(
    cluster: Any, redis_process: RedisProcess
) -> None:
    a, b = cluster(2)
    tok = token()
    conv = await start_conversation(a, tok)
    async with open_wire(conversation_ws(a, conv["conversation_id"]), tok) as home:
        await timed_say(home, "What are your opening hours?")
        async with open_wire(
            conversation_ws(b, conv["conversation_id"]), tok, resume_after=home.last_seq
        ) as wire:
            assert await home.closed() == 4409
            await timed_say(wire, "What are your opening hours?")
            redis_process.pause()
            started = time.monotonic()
            answer = await wire.request({"type": "say", "text": "Are you open today?"})
            assert answer["type"] == "error", answer
            assert answer["code"] == "unavailable"
            assert time.monotonic() - started < 4.0
            redis_process.resume()
            await wait_ready(b, 200)
            await timed_say(wire, "What are your opening hours?")
    assert_clean_logs(a, b)

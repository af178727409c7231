"""P13: what the LLM brain itself adds to the time to the first streamed piece of a reply.

The bench workspace's dispatcher thinks with the LLM brain on :mod:`bench.model`, a
model server that streams its answer the moment the request is read. Each turn, one
after another in one conversation, is timed twice: the same kind of request sent
straight to the model server, until its first piece (what any model costs at least),
and ``say`` over the WebSocket until the reply's first ``message.delta`` (store the
person's words, build the turn, call the model, read its stream, preview the piece
over the bus to the socket). The brain's overhead is the difference, turn by turn.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from bench.client import ConversationClient, Frame, deadline, wait_until
from bench.harness import free_port, person_token
from bench.scenario import (
    Comparison,
    Metric,
    Metrics,
    Params,
    RunContext,
    Scenario,
    Target,
    percentile,
)

READY_TIMEOUT_S = 20.0
TURN_TIMEOUT_S = 20.0


@asynccontextmanager
async def _model() -> AsyncIterator[str]:
    """The instant model server, in its own process; yields its base URL (``…/v1``)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.model",
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        async with httpx.AsyncClient() as client, deadline(READY_TIMEOUT_S, "the model server"):
            while True:
                try:
                    await _first_piece(client, url)
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        yield url
    finally:
        process.terminate()
        await process.wait()


async def _first_piece(client: httpx.AsyncClient, url: str) -> float:
    """Seconds from sending a streamed completion request to its first piece of text."""
    body = {
        "model": "bench",
        "stream": True,
        "messages": [
            {"role": "system", "content": "You are the dispatcher. " * 40},
            {"role": "user", "content": "hello"},
        ],
    }
    started = time.perf_counter()
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:") and '"content"' in line:
                return time.perf_counter() - started
    raise RuntimeError("the model server sent no text")


def _more_than(pieces: dict[str, float], count: int) -> bool:
    return len(pieces) > count


async def run(ctx: RunContext, p: Params, _prepared: object) -> Metrics:
    turns, warmup = int(p["turns"]), int(p["warmup"])
    async with _model() as model_url, ctx.server(env={"BENCH_LLM_URL": model_url}) as server:
        conversation_id, _ = await server.create_conversation("p13-person")
        client = ConversationClient(server.ws, conversation_id, person_token("p13-person"))
        await client.open()
        first_delta: dict[str, float] = {}
        stored: set[str] = set()

        def on_frame(frame: Frame, at: float) -> None:
            if frame.get("type") == "message.delta":
                first_delta.setdefault(str(frame["message_id"]), at)
            elif frame.get("type") == "message" and frame.get("role") == "agent":
                stored.add(str(frame.get("message_id")))

        client.handler = on_frame
        reader = asyncio.create_task(client.read())
        model_s: list[float] = []
        brain_s: list[float] = []
        overhead: list[float] = []
        try:
            async with httpx.AsyncClient() as direct:
                for n in range(warmup + turns):
                    straight = await _first_piece(direct, model_url)
                    count = len(first_delta)
                    _, sent = await client.say(f"hello {n}")
                    async with deadline(TURN_TIMEOUT_S, f"the first piece of reply {n}"):
                        await wait_until(functools.partial(_more_than, first_delta, count))
                    message_id = list(first_delta)[count]
                    async with deadline(TURN_TIMEOUT_S, f"reply {n} stored"):
                        await wait_until(functools.partial(stored.__contains__, message_id))
                    if n < warmup:
                        continue
                    through = first_delta[message_id] - sent
                    model_s.append(straight * 1000)
                    brain_s.append(through * 1000)
                    overhead.append((through - straight) * 1000)
        finally:
            await client.close()
            await reader
    return {
        "overhead_p50_ms": percentile(overhead, 50),
        "overhead_p95_ms": percentile(overhead, 95),
        "first_delta_p50_ms": percentile(brain_s, 50),
        "model_first_piece_p50_ms": percentile(model_s, 50),
        "turns": float(turns),
    }


SCENARIO = Scenario(
    id="P13",
    title="LLM brain: its own share of the time to a reply's first streamed piece",
    metrics=(
        Metric("overhead_p50_ms", "ms", "median of (say → first delta) − (model's first piece)"),
        Metric("overhead_p95_ms", "ms", "95th percentile of the same difference"),
        Metric("first_delta_p50_ms", "ms", "median say → first message.delta"),
        Metric("model_first_piece_p50_ms", "ms", "median request → first piece, model alone"),
        Metric("turns", "", "turns measured"),
    ),
    target=Target("overhead_p95_ms", Comparison.BELOW, 10.0),
    full={"turns": 300, "warmup": 30},
    quick={"turns": 40, "warmup": 5},
    run=run,
)

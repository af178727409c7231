"""P4: say/ack round trips per second through the whole stack, beside a bare echo.

Both halves run in the same run, against the same uvicorn process, with the same
clients: ``connections`` sockets, each in a closed loop (send one frame, wait for its
answer, send the next) for ``duration`` seconds after a short warm-up.

- echo: ``/bench/echo``, a bare Starlette WebSocket route that sends each text frame
  back (behind the same access-log middleware as every route).
- say: ``/v1/conversations/{id}/ws``, one conversation per socket; each ``say`` is
  answered by its ``ack`` once the message is stored and queued for the agent, who
  then replies (also stored and sent: every say costs the server two commits).

The figure is say round trips per second divided by echo round trips per second.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from bench.client import ConversationClient, Frame, next_id, open_socket
from bench.harness import ServerProcess, person_token
from bench.scenario import Comparison, Metric, Metrics, Params, RunContext, Scenario, Target
from bench.server import ECHO_PATH


@dataclass
class _Window:
    warmup_ends: float
    ends: float
    counted: int = 0

    def count(self, at: float) -> None:
        if self.warmup_ends <= at < self.ends:
            self.counted += 1

    @property
    def rate(self) -> float:
        return self.counted / (self.ends - self.warmup_ends)


async def _echo(ctx: RunContext, server: ServerProcess, p: Params) -> tuple[float, float]:
    sockets = await asyncio.gather(
        *(open_socket(server.ws + ECHO_PATH) for _ in range(int(p["connections"])))
    )
    now = time.perf_counter()
    window = _Window(now + float(p["warmup"]), now + float(p["warmup"]) + float(p["duration"]))

    async def loop(i: int) -> None:
        ws = sockets[i]
        n = 0
        while time.perf_counter() < window.ends:
            n += 1
            # The same size as the say frame below.
            await ws.send(json.dumps({"type": "say", "id": f"b{n}", "text": f"echo {i}-{n}"}))
            await ws.recv()
            window.count(time.perf_counter())

    try:
        async with ctx.measuring(server, "P4-echo"):
            cpu_started = server.cpu_seconds()
            await asyncio.gather(*(loop(i) for i in range(len(sockets))))
            cpu = (server.cpu_seconds() - cpu_started) / (window.ends - now)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    return window.rate, cpu


@dataclass
class _Loop:
    client: ConversationClient
    waiting: str = ""
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    errors: int = 0
    replies: int = 0

    def on_frame(self, frame: Frame, at: float) -> None:
        kind = frame.get("type")
        if kind == "ack" and frame.get("id") == self.waiting:
            self.answered.set()
        elif kind == "error":
            self.errors += 1
            if frame.get("id") == self.waiting:
                self.answered.set()
        elif kind == "message" and frame.get("role") == "agent":
            self.replies += 1


async def _say(ctx: RunContext, server: ServerProcess, p: Params) -> tuple[float, int, int, float]:
    count = int(p["connections"])
    loops = []
    for i in range(count):
        person = f"p4-person-{i}"
        conversation_id, _ = await server.create_conversation(person)
        client = ConversationClient(server.ws, conversation_id, person_token(person))
        await client.open()
        loop = _Loop(client)
        client.handler = loop.on_frame
        loops.append(loop)
    now = time.perf_counter()
    window = _Window(now + float(p["warmup"]), now + float(p["warmup"]) + float(p["duration"]))

    async def run_loop(i: int, loop: _Loop) -> None:
        n = 0
        while time.perf_counter() < window.ends:
            n += 1
            loop.waiting = next_id()
            loop.answered.clear()
            await loop.client.send({"type": "say", "id": loop.waiting, "text": f"echo {i}-{n}"})
            await loop.answered.wait()
            window.count(time.perf_counter())

    async with asyncio.TaskGroup() as tg:
        for loop in loops:
            tg.create_task(loop.client.read())
        try:
            async with ctx.measuring(server, "P4-say"):
                cpu_started = server.cpu_seconds()
                await asyncio.gather(*(run_loop(i, loop) for i, loop in enumerate(loops)))
                cpu = (server.cpu_seconds() - cpu_started) / (window.ends - now)
        finally:
            await asyncio.gather(*(loop.client.close() for loop in loops))
    errors = sum(loop.errors for loop in loops)
    return window.rate, errors, sum(loop.replies for loop in loops), cpu


async def run(ctx: RunContext, p: Params, _prepared: object) -> Metrics:
    async with ctx.server() as server:
        echo, echo_cpu = await _echo(ctx, server, p)
        say, errors, replies, cpu = await _say(ctx, server, p)
    return {
        "ratio": say / echo,
        "say_per_s": say,
        "echo_per_s": echo,
        "errors": float(errors),
        "replies": float(replies),
        "say_server_cpu_percent": cpu * 100,
        "say_server_cpu_ms_per_say": cpu / say * 1000,
        "echo_server_cpu_percent": echo_cpu * 100,
        "echo_server_cpu_ms_per_echo": echo_cpu / echo * 1000,
    }


SCENARIO = Scenario(
    id="P4",
    title="say/ack round trips per second vs. a bare Starlette echo, same uvicorn",
    metrics=(
        Metric("ratio", "", "say/ack round trips per second ÷ echo round trips per second"),
        Metric("say_per_s", "/s", "say → ack round trips per second"),
        Metric("echo_per_s", "/s", "echo round trips per second"),
        Metric("errors", "", "error frames received"),
        Metric("replies", "", "agent replies received"),
        Metric("say_server_cpu_percent", "%", "server CPU during the say half (100 = a core)"),
        Metric("say_server_cpu_ms_per_say", "ms", "server CPU time per say round trip"),
        Metric("echo_server_cpu_percent", "%", "server CPU during the echo half (100 = a core)"),
        Metric("echo_server_cpu_ms_per_echo", "ms", "server CPU time per echo round trip"),
    ),
    target=Target("ratio", Comparison.AT_LEAST, 0.2),
    full={"connections": 32, "warmup": 1.0, "duration": 5.0},
    quick={"connections": 8, "warmup": 0.5, "duration": 1.5},
    run=run,
)

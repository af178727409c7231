"""P2: one request fans out to 1,000 sub-agents.

One ``say`` (``fanout 1000``) makes the primary agent start 1,000 workers as one batch;
each worker finishes as soon as it starts, and the primary agent sends one roll-up
when the last is done. Timed from the ``say``: the ``ack``, the first and the last of
the 1,000 ``submitted`` task events, the last ``completed`` one, and the roll-up
(the ``followup`` message).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from bench.client import ConversationClient, Frame, deadline, wait_until
from bench.harness import person_token
from bench.scenario import Comparison, Metric, Metrics, Params, RunContext, Scenario, Target

SUBMITTED_TIMEOUT_S = 60.0
QUIET_S = 15.0
"""Once every task was submitted, a server that sends nothing for this long will send
no roll-up (see ``unfinished`` below)."""


@dataclass
class _Watch:
    expected: int
    ack_id: str = ""
    ack_at: float = 0.0
    submitted: set[str] = field(default_factory=set)
    completed: set[str] = field(default_factory=set)
    first_submitted_at: float = 0.0
    all_submitted_at: float = 0.0
    all_completed_at: float = 0.0
    rollup_at: float = 0.0
    last_frame_at: float = 0.0
    states: dict[str, str] = field(default_factory=dict)
    errors: int = 0

    def on_frame(self, frame: Frame, at: float) -> None:
        self.last_frame_at = at
        kind = frame.get("type")
        if kind == "task":
            task = frame["task"]
            self.states[task["id"]] = task["state"]
            if task["state"] == "submitted" and task["depth"] == 1:
                self.submitted.add(task["id"])
                if len(self.submitted) == 1:
                    self.first_submitted_at = at
                if len(self.submitted) == self.expected:
                    self.all_submitted_at = at
            elif task["state"] == "completed":
                self.completed.add(task["id"])
                if len(self.completed) == self.expected:
                    self.all_completed_at = at
        elif kind == "message" and frame.get("kind") == "followup":
            self.rollup_at = at
        elif kind == "ack" and frame.get("id") == self.ack_id:
            self.ack_at = at
        elif kind == "error":
            self.errors += 1


async def run(ctx: RunContext, p: Params, _prepared: object) -> Metrics:
    count = int(p["subagents"])
    watch = _Watch(count)
    async with ctx.server() as server:
        conversation_id, _ = await server.create_conversation("p2-person")
        client = ConversationClient(server.ws, conversation_id, person_token("p2-person"))
        await client.open()
        client.handler = watch.on_frame
        async with asyncio.TaskGroup() as tg:
            tg.create_task(client.read())
            try:
                async with ctx.measuring(server, "P2"):
                    watch.ack_id, said_at = await client.say(f"fanout {count}")
                    async with deadline(SUBMITTED_TIMEOUT_S, f"{count} submitted"):
                        await wait_until(
                            lambda: bool(watch.all_submitted_at) or client.closed_with is not None
                        )
                    await _wait_for_rollup(watch, client)
            finally:
                await client.close()
    if not watch.all_submitted_at:
        raise RuntimeError(f"the socket closed with {client.closed_with} before all submitted")

    def since_say(at: float) -> float:
        return (at - said_at) * 1000

    metrics = {
        "all_submitted_ms": since_say(watch.all_submitted_at),
        "first_submitted_ms": since_say(watch.first_submitted_at),
        "ack_ms": since_say(watch.ack_at),
        "unfinished": float(sum(1 for s in watch.states.values() if s not in TERMINAL)),
        "errors": float(watch.errors),
    }
    if watch.all_completed_at:
        metrics["all_completed_ms"] = since_say(watch.all_completed_at)
    if watch.rollup_at:
        metrics["rollup_ms"] = since_say(watch.rollup_at)
    else:
        ctx.log(f"    no roll-up: {metrics['unfinished']:.0f} tasks never ended")
    return metrics


async def _wait_for_rollup(watch: _Watch, client: ConversationClient) -> None:
    """Until the roll-up arrives, the socket closes, or the server falls quiet."""
    while not watch.rollup_at and client.closed_with is None:
        if time.perf_counter() - watch.last_frame_at > QUIET_S:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await wait_until(lambda: bool(watch.rollup_at) or client.closed_with is not None)


TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})

SCENARIO = Scenario(
    id="P2",
    title="one request fans out to 1,000 sub-agents",
    metrics=(
        Metric("all_submitted_ms", "ms", "say → all submitted events received"),
        Metric("first_submitted_ms", "ms", "say → the first submitted event"),
        Metric("ack_ms", "ms", "say → ack"),
        Metric("all_completed_ms", "ms", "say → all completed events received"),
        Metric("rollup_ms", "ms", "say → the roll-up follow-up"),
        Metric("unfinished", "", "tasks never shown terminal (then no roll-up comes)"),
        Metric("errors", "", "error frames received"),
    ),
    target=Target("all_submitted_ms", Comparison.BELOW, 500.0),
    full={"subagents": 1000},
    quick={"subagents": 1000},
    run=run,
)

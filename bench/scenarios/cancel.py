"""P3: cancel a tree of 1 + 10 + 100 tasks.

``tree 10 10`` starts a root task whose sub-agent starts 10 branches, each of which
starts 10 holders that wait until cancelled. Once all 111 tasks are ``working``, the
client sends ``task.cancel`` for the root and times, from that frame: the ``result``,
the moment every task was shown ``cancelling`` (or terminal), and the moment every one
was shown terminal — each task's terminal ``task`` event received on the conversation's
socket.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bench.client import ConversationClient, Frame, deadline, next_id, wait_until
from bench.harness import person_token
from bench.scenario import Comparison, Metric, Metrics, Params, RunContext, Scenario, Target

SETUP_TIMEOUT_S = 60.0
CANCEL_TIMEOUT_S = 60.0
TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})


@dataclass
class _Tree:
    size: int
    states: dict[str, str] = field(default_factory=dict)
    root: str = ""
    cancel_id: str = ""
    result_at: float = 0.0
    all_cancelling_at: float = 0.0
    all_terminal_at: float = 0.0
    errors: int = 0

    def count(self, states: frozenset[str]) -> int:
        return sum(1 for state in self.states.values() if state in states)

    def on_frame(self, frame: Frame, at: float) -> None:
        kind = frame.get("type")
        if kind == "task":
            task = frame["task"]
            self.states[task["id"]] = task["state"]
            if task["depth"] == 1:
                self.root = task["id"]
            if self.cancel_id and len(self.states) == self.size:
                if (
                    not self.all_cancelling_at
                    and self.count(TERMINAL | {"cancelling"}) == self.size
                ):
                    self.all_cancelling_at = at
                if not self.all_terminal_at and self.count(TERMINAL) == self.size:
                    self.all_terminal_at = at
        elif kind == "result" and frame.get("id") == self.cancel_id:
            self.result_at = at
        elif kind == "error":
            self.errors += 1


async def run(ctx: RunContext, p: Params, _prepared: object) -> Metrics:
    widths = [int(w) for w in p["widths"]]
    size, level = 1, 1
    for width in widths:
        level *= width
        size += level
    tree = _Tree(size)
    async with ctx.server() as server:
        conversation_id, _ = await server.create_conversation("p3-person")
        client = ConversationClient(server.ws, conversation_id, person_token("p3-person"))
        await client.open()
        client.handler = tree.on_frame
        async with asyncio.TaskGroup() as tg:
            tg.create_task(client.read())
            try:
                await client.say("tree " + " ".join(map(str, widths)))
                async with deadline(SETUP_TIMEOUT_S, f"{size} tasks working"):
                    await wait_until(lambda: tree.count(frozenset({"working"})) == size)
                # Let the announcements and audit writes of the start settle.
                await asyncio.sleep(float(p["settle"]))
                async with ctx.measuring(server, "P3"):
                    tree.cancel_id = next_id()
                    cancelled_at = await client.send(
                        {"type": "task.cancel", "id": tree.cancel_id, "task_id": tree.root}
                    )
                    async with deadline(CANCEL_TIMEOUT_S, "every task terminal"):
                        await wait_until(lambda: bool(tree.all_terminal_at))
            finally:
                await client.close()
    if tree.count(frozenset({"cancelled"})) != size:
        raise RuntimeError(f"not every task was cancelled: {sorted(tree.states.values())}")

    def since_cancel(at: float) -> float:
        return (at - cancelled_at) * 1000

    return {
        "all_terminal_ms": since_cancel(tree.all_terminal_at),
        "result_ms": since_cancel(tree.result_at),
        "all_cancelling_ms": since_cancel(tree.all_cancelling_at),
        "tasks": float(size),
        "errors": float(tree.errors),
    }


SCENARIO = Scenario(
    id="P3",
    title="cancel a tree of 1 + 10 + 100 tasks",
    metrics=(
        Metric("all_terminal_ms", "ms", "task.cancel → every task's terminal event received"),
        Metric("result_ms", "ms", "task.cancel → its result"),
        Metric("all_cancelling_ms", "ms", "task.cancel → every task shown cancelling"),
        Metric("tasks", "", "tasks in the tree"),
        Metric("errors", "", "error frames received"),
    ),
    target=Target("all_terminal_ms", Comparison.BELOW, 100.0),
    full={"widths": [10, 10], "settle": 1.0},
    quick={"widths": [10, 10], "settle": 0.5},
    run=run,
)

"""The bench workspace: agents, a brain and tools that shape the benchmarks' workloads.

The demo's rule brain decides what its agents do from ordinary wording, so it cannot be
asked for a 1,000-way fan-out or a 1 + 10 + 100 tree. This workspace can. Its agents
are ordinary :class:`~agents.models.AgentDefinition` data, its brain a
:class:`~agents.brains.Brain` like any other, and every effect still goes through the
runtime (ownership, depth cap, audit, store-then-publish): only the decisions are the
bench's.

What the dispatcher (the primary agent) understands, one command per ``say``:

=====================  ==================================================================
``echo TOKEN``         replies ``echo TOKEN`` at once (a turn with no background work)
``tick N INTERVAL``    starts N tickers as one batch; each reports progress every
                       INTERVAL seconds, at a phase of its own, until cancelled
``fanout N``           starts N workers as one batch; each finishes at once, and one
                       roll-up follows the last
``tree W1 W2 ...``     starts one branch; a branch with widths ``W1 W2 ...`` starts W1
                       branches with ``W2 ...``, and the last level holds until
                       cancelled (``tree 10 10``: 1 + 10 + 100 tasks)
=====================  ==================================================================
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel

from agents.brains import (
    Action,
    Assignment,
    CallTool,
    Delegate,
    Finish,
    Note,
    Outcome,
    Reply,
    Step,
    Turn,
    Work,
)
from agents.models import AgentDefinition, Task, TaskState
from agents.tools import Tool, ToolBox, ToolContext, ToolResult

BENCH_WORKSPACE = "bench"
BRAIN = "bench"

DISPATCHER = "bench-dispatcher"
TICKER = "bench-ticker"
WORKER = "bench-worker"
BRANCH = "bench-branch"
HOLDER = "bench-holder"

TICK = "bench.tick"
HOLD = "bench.hold"

SLOW = 3600.0
"""The tools' declared latency: far past any turn budget, so they always run in the
background, as a phone call or a prior authorization would."""


def bench_agents(workspace_id: str = BENCH_WORKSPACE) -> list[AgentDefinition]:
    """The bench's agents: the dispatcher (primary) first, then its team."""

    def agent(
        agent_id: str, name: str, what: str, tools: tuple[str, ...] = (), *, primary: bool = False
    ) -> AgentDefinition:
        return AgentDefinition(
            workspace_id=workspace_id,
            id=agent_id,
            name=name,
            description=what,
            instructions=what,
            tools=tools,
            brain=BRAIN,
            primary=primary,
        )

    return [
        agent(
            DISPATCHER, "Dispatcher", "Answers at once; starts the bench's workloads.", primary=True
        ),
        agent(TICKER, "Ticker", "Reports progress at a steady rate until cancelled.", (TICK,)),
        agent(WORKER, "Worker", "Finishes as soon as it starts."),
        agent(BRANCH, "Branch", "Delegates to the next level of the tree."),
        agent(HOLDER, "Holder", "Holds until cancelled.", (HOLD,)),
    ]


def build_bench_tools() -> ToolBox:
    """``bench.tick`` (progress every ``interval`` s, forever) and ``bench.hold`` (waits)."""

    async def tick(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        interval = float(args.get("interval", 1.0))
        # Each ticker keeps its own phase, as independent sub-agents would: a thousand
        # tickers started together must not all report in the same millisecond.
        due = anyio.current_time() + random.uniform(0, interval)
        count = 0
        while True:
            await anyio.sleep(max(0.0, due - anyio.current_time()))
            count += 1
            ctx.report_progress(f"Tick {count}.")
            due += interval

    async def hold(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    return ToolBox(
        [
            Tool(TICK, "Report progress every interval seconds until cancelled.", SLOW, tick),
            Tool(HOLD, "Wait until cancelled.", SLOW, hold),
        ]
    )


class BenchBrain:
    """A :class:`~agents.brains.Brain` that does exactly what the bench asks."""

    async def respond(self, turn: Turn) -> Action:
        await anyio.lowlevel.checkpoint()
        words = turn.text.split()
        command, rest = (words[0].lower(), words[1:]) if words else ("", [])
        if command == "echo":
            return Reply(turn.text)
        if command == "tick" and len(rest) == 2:
            count, interval = int(rest[0]), float(rest[1])
            return Delegate(
                f"Starting {count} tickers.",
                tuple(
                    Assignment(
                        TICKER, f"Ticker {i}", f"ticker {i}", "Tick.", TICK, {"interval": interval}
                    )
                    for i in range(count)
                ),
                rollup=True,
            )
        if command == "fanout" and len(rest) == 1:
            count = int(rest[0])
            return Delegate(
                f"Starting {count} workers.",
                tuple(
                    Assignment(WORKER, f"Worker {i}", f"worker {i}", "Finish.")
                    for i in range(count)
                ),
                rollup=True,
            )
        if command == "tree" and rest:
            return Delegate(
                "Starting a tree.",
                (Assignment(BRANCH, "Tree root", "tree", "branch " + " ".join(rest)),),
            )
        return Reply(f"Unknown bench command: {command or '(empty)'}.")

    async def step(self, work: Work) -> Step:
        await anyio.lowlevel.checkpoint()
        if work.history:
            return Finish(f"{work.agent.name} done.")
        params = work.task.params
        tool = params.get("tool")
        if isinstance(tool, str) and tool:
            args = params.get("args")
            return CallTool(tool, dict(args) if isinstance(args, Mapping) else {})
        words = str(params.get("instructions", "")).split()
        if words[:1] == ["branch"] and len(words) >= 2:
            width, below = int(words[1]), words[2:]
            if below:
                assignments = tuple(
                    Assignment(BRANCH, f"Branch {i}", f"branch {i}", "branch " + " ".join(below))
                    for i in range(width)
                )
            else:
                assignments = tuple(
                    Assignment(HOLDER, f"Holder {i}", f"holder {i}", "Hold.", HOLD)
                    for i in range(width)
                )
            return Delegate(f"Starting {width} below.", assignments)
        if work.new_instructions:
            return Note("Noted.")
        return Finish(f"{work.agent.name} done.")

    def status_text(self, tasks: Sequence[Task]) -> str:
        states = ", ".join(f"{t.title}: {t.state.value}" for t in tasks)
        return states or "Nothing is running."

    def cancel_text(self, tasks: Sequence[Task]) -> str:
        return f"Cancelling {len(tasks)} task(s)." if tasks else "Nothing to cancel."

    def instruct_text(self, task: Task) -> str:
        return f"Passed on to {task.title}."

    def tool_text(self, tool: str, result: ToolResult) -> str:
        return result.text

    def progress_text(self, task: Task, progress: str) -> str:
        # As the rule brain does: a batch speaks once, in its roll-up.
        return "" if task.batch_id is not None else progress

    def followup_text(self, outcomes: Sequence[Outcome], *, rollup: bool) -> str:
        done = sum(1 for o in outcomes if o.task.state is TaskState.COMPLETED)
        return f"All {len(outcomes)} done: {done} completed."

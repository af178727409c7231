"""A runtime on in-memory ports, and a small scripted brain, for the runtime's tests.

The scripted brain speaks a tiny command language so that each test states exactly
what the agents do: ``fan N tool`` delegates N tasks using *tool*; ``nest D`` starts
a chain that tries to delegate D levels deep; ``status``, ``cancel ID``,
``instruct ID TEXT`` act on tasks; ``crash`` raises (a brain's bug); ``about TOOL P``
uses *tool* about patient *P* inline, ``assign TOOL P`` delegates it, and ``stray TOOL P Q``
delegates work about *P* whose sub-agent then calls *tool* about *Q* (a brain naming
whoever it likes); anything else is echoed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from agents.brains import (
    Action,
    Assignment,
    CallTool,
    Cancel,
    CheckStatus,
    Delegate,
    Finish,
    Instruct,
    Note,
    Outcome,
    Reply,
    Step,
    Turn,
    UseTool,
    VerifyCaller,
    Work,
)
from agents.conversation import ConversationRuntime, Services
from agents.host import ConversationHost
from agents.memory import MemoryAudit, MemoryBus, MemoryStore
from agents.models import (
    AgentDefinition,
    Conversation,
    Message,
    Principal,
    Role,
    StreamEvent,
    Task,
    TaskUpdate,
)
from agents.settings import RuntimeSettings
from agents.tools import Tool, ToolBox, ToolContext, ToolResult

WS = "lab"


class ScriptedBrain:
    """A deterministic brain driven by commands (see the module docstring)."""

    async def respond(self, turn: Turn) -> Action:
        words = turn.text.split()
        if words[:1] == ["fan"]:
            n, tool = int(words[1]), words[2]
            return Delegate(
                text=f"starting {n}",
                assignments=tuple(
                    Assignment("worker", f"job {i}", f"job{i}", f"do job {i}", tool, {"i": i})
                    for i in range(n)
                ),
                rollup=n > 1,
            )
        if words[:1] == ["nest"]:
            depth = int(words[1])
            wait = words[2:] == ["wait"]
            return Delegate(
                text="nesting",
                assignments=(
                    Assignment(
                        "nester", "level 1", "nest", "nest", None, {"left": depth, "wait": wait}
                    ),
                ),
            )
        if words[:1] == ["borrow"]:
            job = Assignment(words[1], "borrowed", "borrowed", "work", "quick", {"i": 1})
            return Delegate(text="borrowing", assignments=(job,))
        if words[:1] == ["about"]:
            return UseTool(words[1], {"patient_id": words[2]}, "about", words[2])
        if words[:1] in (["assign"], ["stray"]):
            args = {"patient_id": words[2], "call_about": words[-1]}
            job = Assignment("worker", "about", "about", "work", words[1], args)
            return Delegate(text="assigned", assignments=(job,))
        if words[:1] == ["use"]:
            return UseTool(words[1], {"i": 7}, f"use {words[1]}", words[1])
        if words[:1] == ["crash"]:
            # A bug in the brain, quoting what it was given (which must never be logged).
            if words[1:2] == ["group"]:
                raise ExceptionGroup("brain bug", [KeyError(turn.text)])
            raise KeyError(turn.text)
        if words[:1] == ["verify"]:
            return VerifyCaller(" ".join(words[1:-1]), words[-1])
        if words[:1] == ["status"]:
            return CheckStatus(tuple(words[1:]))
        if words[:1] == ["cancel"]:
            return Cancel(tuple(words[1:]))
        if words[:1] == ["instruct"]:
            return Instruct(words[1], " ".join(words[2:]))
        return Reply(f"echo: {turn.text}")

    async def step(self, work: Work) -> Step:
        if work.new_instructions:
            return Note("noted: " + "; ".join(work.new_instructions))
        params = work.task.params
        args: Mapping[str, Any] = params.get("args") or {}
        if work.agent.id == "nester":
            depth = work.task.depth
            if work.refusal is not None:
                return Finish(f"refused at depth {depth}", {"refused_at": depth})
            delegated = [r for r in work.history if r.outcomes]
            if delegated:
                child = delegated[-1].outcomes[0]
                return Finish(f"done at depth {depth}", dict(child.data))
            left = int(args.get("left", 0))
            if not work.history:
                # Hold something open at every level, so that every level has a clean-up.
                return CallTool("hold", {"i": depth})
            if left > 1:
                deeper = Assignment(
                    "nester",
                    f"level {depth + 1}",
                    "nest",
                    "nest",
                    None,
                    {"left": left - 1, "wait": args.get("wait", False)},
                )
                return Delegate(text="deeper", assignments=(deeper,))
            if args.get("wait") and not any(
                r.result and "passed" in r.result.text for r in work.history
            ):
                return CallTool("gate", {"i": depth})
            return Finish(f"bottom at depth {depth}", {"bottom": depth})
        if "call_about" in args:
            if not work.history:
                return CallTool(str(params["tool"]), {"patient_id": args["call_about"]})
            last = work.history[-1]
            return Finish(last.error or (last.result.text if last.result else ""), {})
        if not work.history or not any(isinstance(r.step, CallTool) for r in work.history):
            return CallTool(str(params["tool"]), args)
        heard = next(r.result.text for r in reversed(work.history) if r.result is not None)
        return Finish(f"{heard} [{'; '.join(work.instructions)}]", {"heard": heard})

    def status_text(self, tasks: Sequence[Task]) -> str:
        return "; ".join(f"{t.title}: {t.state.value} ({t.progress})" for t in tasks) or "none"

    def cancel_text(self, tasks: Sequence[Task]) -> str:
        return "cancelling " + ", ".join(t.title for t in tasks)

    def instruct_text(self, task: Task) -> str:
        return f"told {task.title}"

    def tool_text(self, tool: str, result: ToolResult) -> str:
        return result.text

    def progress_text(self, task: Task, progress: str) -> str:
        return f"{task.title}: {progress}"

    def followup_text(self, outcomes: Sequence[Outcome], *, rollup: bool) -> str:
        parts = [f"{o.task.title}={o.task.state.value}:{o.task.result}" for o in outcomes]
        return ("rollup " if rollup else "update ") + " | ".join(parts)


@dataclass
class Gate:
    """A tool that waits until released, and remembers what happened to its calls."""

    released: anyio.Event = field(default_factory=anyio.Event)
    started: list[int] = field(default_factory=list)
    cleaned: list[int] = field(default_factory=list)
    released_holds: list[int] = field(default_factory=list)

    def tool(self) -> Tool:
        async def run(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
            self.started.append(int(args.get("i", 0)))
            ctx.report_progress("waiting at the gate")
            await self.released.wait()
            return ToolResult(f"passed {args.get('i')}")

        async def cleanup(ctx: ToolContext, args: Mapping[str, Any]) -> str:
            await anyio.sleep(0.01)
            self.cleaned.append(int(args.get("i", 0)))
            return f"closed gate {args.get('i')}"

        return Tool("gate", "waits for release", 10.0, run, cleanup)

    def hold(self) -> Tool:
        """Returns at once but leaves something open that clean-up must close."""

        async def run(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
            await anyio.lowlevel.checkpoint()
            return ToolResult(f"holding {args.get('i')}", left_open=True)

        async def cleanup(ctx: ToolContext, args: Mapping[str, Any]) -> str:
            await anyio.sleep(0.01)
            self.released_holds.append(int(args.get("i", 0)))
            return f"released hold {args.get('i')}"

        return Tool("hold", "holds a resource", 0.01, run, cleanup)


def lab_tools(gate: Gate) -> ToolBox:
    async def quick(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        await anyio.lowlevel.checkpoint()
        return ToolResult(f"quick {args.get('i')}")

    async def boom(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("secret details that must not leak")

    async def chatty(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        for n in range(20):
            ctx.report_progress(f"step {n}")
            await anyio.sleep(0.01)
        return ToolResult("chatty done")

    return ToolBox(
        [
            Tool("quick", "fast", 0.01, quick),
            Tool("boom", "fails", 5.0, boom),
            Tool("chatty", "reports progress often", 5.0, chatty),
            gate.tool(),
            gate.hold(),
        ]
    )


def lab_agents(workspace: str = WS) -> list[AgentDefinition]:
    return [
        AgentDefinition(
            workspace, "lead", "Lead", "primary", "", ("quick", "gate"), "scripted", primary=True
        ),
        AgentDefinition(
            workspace,
            "worker",
            "Worker",
            "does jobs",
            "",
            ("quick", "boom", "chatty", "gate"),
            "scripted",
        ),
        AgentDefinition(workspace, "nester", "Nester", "nests", "", ("gate", "hold"), "scripted"),
    ]


PERSON = Principal(WS, "pat", Role.PERSON, "Pat")


@dataclass
class Lab:
    host: ConversationHost
    store: MemoryStore
    bus: MemoryBus
    audit: MemoryAudit
    gate: Gate
    conversation: Conversation
    runtime: ConversationRuntime

    def events(self, chat_id: str | None = None) -> list[StreamEvent]:
        return list(self.store.events[chat_id or self.conversation.chat_id])

    def messages(self, kind: str | None = None) -> list[Message]:
        found = [e.body for e in self.events() if isinstance(e.body, Message)]
        return [m for m in found if kind is None or m.kind.value == kind]

    def tasks(self) -> list[Task]:
        return list(self.store.tasks.values())

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Poll *predicate* (over stored state, which has no events to wait on)."""
        with anyio.fail_after(within):
            while not predicate():  # noqa: ASYNC110
                await anyio.sleep(0.005)

    def task_states(self, task_id: str) -> list[str]:
        return [
            e.body.task.state.value
            for e in self.events()
            if isinstance(e.body, TaskUpdate) and e.body.task.id == task_id
        ]


@asynccontextmanager
async def lab(**overrides: Any) -> AsyncIterator[Lab]:
    store, bus, audit, gate = MemoryStore(), MemoryBus(), MemoryAudit(), Gate()
    outsider = AgentDefinition("elsewhere", "outsider", "Outsider", "", "", ("quick",), "scripted")
    await store.save_agents([*lab_agents(), *lab_agents("elsewhere"), outsider])
    settings = RuntimeSettings(**{"progress_interval": 0.05, "cleanup_deadline": 1.0, **overrides})
    services = Services(
        store, bus, audit, lab_tools(gate), {"scripted": ScriptedBrain()}, settings, directory=store
    )
    host = ConversationHost(services)
    async with anyio.create_task_group() as tg:
        await tg.start(host.run)
        conversation = await host.create_conversation(PERSON)
        async with host.attach(conversation) as runtime:
            yield Lab(host, store, bus, audit, gate, conversation, runtime)
        host.stop()

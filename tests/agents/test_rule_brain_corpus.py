"""The rule brain's corpus, said to a real conversation runtime (see corpus/README.md).

Every case starts a fresh conversation in one host of the demo workspace — its agents,
the rule brain, the simulated payer and telephony, on in-memory ports — says the
scenario's requests so that their work is running (calls that never end, a payer that
never decides), then says the case's utterances and looks at what happened: which
tasks were started, cancelled or instructed in the store, and what the brain decided.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

from agents.brains import (
    Action,
    Cancel,
    CheckStatus,
    Delegate,
    Instruct,
    Outcome,
    Step,
    Turn,
    UseTool,
    Work,
)
from agents.brains.rule import RuleBrain
from agents.conversation import ConversationRuntime, Services
from agents.demo import RECORDS_LOOKUP
from agents.demo.patients import demo_patients
from agents.demo.payer import PRIOR_AUTH, PayerSimulator
from agents.demo.telephony import PHONE_CALL, TelephonySimulator
from agents.demo.workspace import build_demo_tools, demo_agents
from agents.host import ConversationHost
from agents.memory import MemoryAudit, MemoryBus, MemoryStore
from agents.models import Message, MessageKind, MessageRole, Principal, Role, Task, TaskState
from agents.settings import RuntimeSettings
from agents.tools import ToolResult
from tests.agents.corpus import (
    SCENARIO_TASKS,
    SCENARIOS,
    Case,
    Observed,
    Score,
    all_cases,
    report,
    understood,
    wrong_actions,
)

pytestmark = pytest.mark.anyio

PERSON = Principal("demo", "pat", Role.PERSON, "Pat")
REQUIRED_SHARE = 0.95


class RecordingBrain:
    """The real rule brain, with a record of each decision it returned."""

    def __init__(self, inner: RuleBrain) -> None:
        self.inner = inner
        self.actions: list[Action] = []

    async def respond(self, turn: Turn) -> Action:
        action = await self.inner.respond(turn)
        self.actions.append(action)
        return action

    async def step(self, work: Work) -> Step:
        return await self.inner.step(work)

    def status_text(self, tasks: Sequence[Task]) -> str:
        return self.inner.status_text(tasks)

    def cancel_text(self, tasks: Sequence[Task]) -> str:
        return self.inner.cancel_text(tasks)

    def instruct_text(self, task: Task) -> str:
        return self.inner.instruct_text(task)

    def tool_text(self, tool: str, result: ToolResult) -> str:
        return self.inner.tool_text(tool, result)

    def progress_text(self, task: Task, progress: str) -> str:
        return self.inner.progress_text(task, progress)

    def followup_text(self, outcomes: Sequence[Outcome], *, rollup: bool) -> str:
        return self.inner.followup_text(outcomes, rollup=rollup)


@dataclass
class Clinic:
    host: ConversationHost
    store: MemoryStore
    brain: RecordingBrain


@asynccontextmanager
async def clinic() -> AsyncIterator[Clinic]:
    store, bus, audit = MemoryStore(), MemoryBus(), MemoryAudit()
    await store.save_agents(demo_agents())
    await store.save_patients(demo_patients())
    # Work that stays running: calls are never answered, the payer never decides.
    telephony, payer = TelephonySimulator(ring_forever=True), PayerSimulator(hang=True)
    brain = RecordingBrain(RuleBrain(store))
    services = Services(
        store=store,
        publisher=bus,
        audit=audit,
        toolbox=build_demo_tools(store, latency_scale=0.01, telephony=telephony, payer=payer),
        brains={"rule": brain},
        settings=RuntimeSettings(progress_interval=0.01, cleanup_deadline=1.0),
    )
    host = ConversationHost(services)
    async with anyio.create_task_group() as tg:
        await tg.start(host.run)
        yield Clinic(host, store, brain)
        host.stop()


def _messages(store: MemoryStore, chat_id: str) -> list[Message]:
    return [e.body for e in store.events.get(chat_id, ()) if isinstance(e.body, Message)]


async def _say(store: MemoryStore, runtime: ConversationRuntime, text: str) -> str:
    chat = runtime.conversation.chat_id

    def replies() -> list[Message]:
        return [
            m
            for m in _messages(store, chat)
            if m.role is MessageRole.AGENT and m.kind is MessageKind.REPLY
        ]

    before = len(replies())
    await runtime.say(PERSON, text)
    with anyio.fail_after(10):
        while len(replies()) <= before:  # noqa: ASYNC110 - polling stored state
            await anyio.sleep(0.002)
    return replies()[before].text


def _first(patient_id: object) -> str:
    return str(patient_id or "").removeprefix("pt-")


def task_key(task: Task) -> str:
    """A running task's corpus name: ``dana-pa``, ``bob-call``."""
    args = task.params.get("args") or {}
    tool = task.params.get("tool")
    who = _first(args.get("patient_id"))
    suffix = {PRIOR_AUTH: "pa", PHONE_CALL: "call", RECORDS_LOOKUP: "records"}.get(str(tool), "?")
    return f"{who}-{suffix}"


def start_key(task: Task) -> str:
    """A new task's corpus name: ``call:bob``, ``pa:ozempic:dana``, ``records:dana``."""
    args = task.params.get("args") or {}
    tool = task.params.get("tool")
    who = _first(args.get("patient_id"))
    if tool == PRIOR_AUTH:
        medicine = str(args.get("medication", "")).lower()
        return f"pa:{medicine}" + (f":{who}" if who else "")
    if tool == PHONE_CALL:
        return f"call:{who}"
    return f"records:{who}"


def _tasks(store: MemoryStore, runtime: ConversationRuntime) -> dict[str, Task]:
    conversation = runtime.conversation.id
    return {
        t.id: t for t in store.tasks.values() if t.conversation_id == conversation and t.depth == 1
    }


async def run_case(place: Clinic, case: Case) -> list[Observed]:
    """Say *case* in a fresh conversation; what each of its turns did."""
    store = place.store
    conversation = await place.host.create_conversation(PERSON)
    seen: list[Observed] = []
    async with place.host.attach(conversation) as runtime:
        for request in SCENARIOS[case.scenario]:
            await _say(store, runtime, request)
        with anyio.fail_after(10):
            while any(  # noqa: ASYNC110 - polling stored state
                t.state is not TaskState.WORKING for t in _tasks(store, runtime).values()
            ):
                await anyio.sleep(0.002)
        setup = _tasks(store, runtime)
        keys = {task_id: task_key(t) for task_id, t in setup.items()}
        assert set(keys.values()) == SCENARIO_TASKS[case.scenario], keys
        for text, _expect in case.turns:
            before = _tasks(store, runtime)
            heard = {tid: len(_messages(store, t.chat_id)) for tid, t in before.items()}
            decided = len(place.brain.actions)
            reply = await _say(store, runtime, text)
            action = place.brain.actions[decided]
            after = _tasks(store, runtime)
            started = frozenset(start_key(t) for tid, t in after.items() if tid not in before)
            cancelled = frozenset(
                keys.get(tid, tid)
                for tid, t in after.items()
                if tid in before
                and not before[tid].state.is_terminal
                and t.state in (TaskState.CANCELLING, TaskState.CANCELLED)
            )
            instructed = frozenset(
                keys.get(tid, tid)
                for tid, t in before.items()
                if any(
                    m.author.id == "front-desk" and not m.text.startswith("Cancel requested by")
                    for m in _messages(store, t.chat_id)[heard[tid] :]
                )
            )
            kind, status, looked = "reply", frozenset[str](), frozenset[str]()
            if isinstance(action, CheckStatus):
                kind = "status"
                ids = action.task_ids or tuple(before)
                status = frozenset(keys.get(i, i) for i in ids)
            elif isinstance(action, UseTool):
                kind = "lookup"
                looked = frozenset({_first(action.args.get("patient_id"))})
            elif isinstance(action, Delegate):
                kind = "start"
            elif isinstance(action, Instruct):
                kind = "instruct"
            elif isinstance(action, Cancel):
                kind = "cancel"
            seen.append(Observed(kind, reply, started, cancelled, instructed, status, looked))
        # Leave nothing running behind: stop what the case left, and wait for it.
        for task in _tasks(store, runtime).values():
            if not task.state.is_terminal:
                await runtime.cancel(runtime.agent_principal, task.id)
        with anyio.move_on_after(10):
            while any(  # noqa: ASYNC110 - polling stored state
                not t.state.is_terminal for t in _tasks(store, runtime).values()
            ):
                await anyio.sleep(0.002)
        left = [f"{t.title}: {t.state}" for t in _tasks(store, runtime).values()]
        assert all(t.state.is_terminal for t in _tasks(store, runtime).values()), (case, left)
    return seen


async def score_corpus(parts: Mapping[str, list[Case]]) -> list[Score]:
    scores: list[Score] = []
    async with clinic() as place:
        for name, cases in parts.items():
            score = Score(name)
            for case in cases:
                observed = await run_case(place, case)
                for (text, expect), seen in zip(case.turns, observed, strict=True):
                    score.total += 1
                    where = f"{case.source}:{case.line} [{case.scenario}] {text!r}"
                    if understood(expect, seen):
                        score.right += 1
                    else:
                        score.missed.append(
                            f"{where} expected {expect}, got {seen.action} — {seen.reply[:90]}"
                        )
                    for wrong in wrong_actions(expect, seen):
                        score.wrong.append(f"{where}: {wrong}")
            scores.append(score)
    return scores


@pytest.mark.timeout(240)
async def test_the_corpus_is_understood_and_nothing_wrong_is_ever_done() -> None:
    parts = all_cases()
    assert sum(len(c.turns) for cases in parts.values() for c in cases) >= 300
    scores = await score_corpus(parts)
    total = Score("all", sum(s.total for s in scores), sum(s.right for s in scores))
    print()
    print(report(scores))
    print(total.line())
    wrong = [w for s in scores for w in s.wrong]
    assert not wrong, "wrong actions:\n" + "\n".join(wrong)
    assert total.share >= REQUIRED_SHARE, total.line()

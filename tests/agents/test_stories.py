"""The seed's three stories, in-process, through the runtime's public API.

The demo workspace as shipped — its agents, the rule brain, the simulated telephony,
payer and records tools — on in-memory ports, with every latency scaled down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

from agents.brains.rule import RuleBrain
from agents.conversation import ConversationRuntime, Services
from agents.demo.patients import demo_patients
from agents.demo.payer import PayerSimulator
from agents.demo.telephony import TelephonySimulator
from agents.demo.workspace import build_demo_tools, demo_agents
from agents.host import ConversationHost
from agents.memory import MemoryAudit, MemoryBus, MemoryStore
from agents.models import Message, MessageKind, Principal, Role, Task, TaskState
from agents.ports import AuditType
from agents.settings import RuntimeSettings

pytestmark = pytest.mark.anyio

PERSON = Principal("demo", "pat", Role.PERSON, "Pat")


@dataclass
class Demo:
    host: ConversationHost
    store: MemoryStore
    audit: MemoryAudit
    telephony: TelephonySimulator
    payer: PayerSimulator
    runtime: ConversationRuntime

    def messages(self, kind: MessageKind | None = None) -> list[Message]:
        chat = self.runtime.conversation.chat_id
        found = [e.body for e in self.store.events[chat] if isinstance(e.body, Message)]
        return [m for m in found if kind is None or m.kind is kind]

    def agent_texts(self) -> list[str]:
        return [m.text for m in self.messages() if m.role.value == "agent"]

    def tasks(self) -> list[Task]:
        return sorted(self.store.tasks.values(), key=lambda t: t.created_at)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 20.0) -> None:
        with anyio.fail_after(within):
            while not predicate():  # noqa: ASYNC110 - polling stored state
                await anyio.sleep(0.005)

    async def ask(self, text: str) -> str:
        """Say *text* and return the agent's reply to it."""
        before = len(self.messages(MessageKind.REPLY))
        await self.runtime.say(PERSON, text)
        # The person's own message is a reply-kind user message; wait for the agent's.
        await self.wait_for(
            lambda: any(m.role.value == "agent" for m in self.messages(MessageKind.REPLY)[before:])
        )
        return next(
            m.text for m in self.messages(MessageKind.REPLY)[before:] if m.role.value == "agent"
        )


@asynccontextmanager
async def demo(scale: float = 0.02) -> AsyncIterator[Demo]:
    store, bus, audit = MemoryStore(), MemoryBus(), MemoryAudit()
    await store.save_agents(demo_agents())
    await store.save_patients(demo_patients())
    telephony, payer = TelephonySimulator(), PayerSimulator()
    services = Services(
        store=store,
        publisher=bus,
        audit=audit,
        toolbox=build_demo_tools(store, latency_scale=scale, telephony=telephony, payer=payer),
        brains={"rule": RuleBrain(store)},
        settings=RuntimeSettings(progress_interval=0.01, cleanup_deadline=2.0),
    )
    host = ConversationHost(services)
    async with anyio.create_task_group() as tg:
        await tg.start(host.run)
        conversation = await host.create_conversation(PERSON)
        async with host.attach(conversation) as runtime:
            yield Demo(host, store, audit, telephony, payer, runtime)
        host.stop()


async def test_outreach_fans_out_one_call_per_patient_and_rolls_up() -> None:
    async with demo(scale=0.2) as d:
        answer = await d.ask("Reach every patient who hasn't completed onboarding")
        for name in ("Alice", "Bob", "Carol"):
            assert name in answer
        tasks = d.tasks()
        assert [t.agent.id for t in tasks] == ["outreach-caller"] * 3
        # In parallel: all three are under way before any has finished.
        await d.wait_for(lambda: len(d.telephony.calls) == 3)
        assert not any(t.state.is_terminal for t in d.store.tasks.values())
        # The person keeps chatting and is answered while the calls run.
        reply = await d.ask("What are your opening hours?")
        assert reply
        assert not d.messages(MessageKind.FOLLOWUP)
        await d.wait_for(lambda: bool(d.messages(MessageKind.FOLLOWUP)))
        await anyio.sleep(0.05)
        (rollup,) = d.messages(MessageKind.FOLLOWUP)
        assert rollup.text == (
            "Agent 1 called Alice — she's getting back to us today. "
            "Agent 2 left a voicemail for Bob. "
            "Agent 3 learned that Carol has moved and no longer needs services."
        )
        assert {t.state for t in d.store.tasks.values()} == {TaskState.COMPLETED}


async def test_prior_authorization_runs_in_the_background_with_progress_and_status() -> None:
    async with demo(scale=0.3) as d:
        await d.ask("Can you start a prior authorization for Ozempic for Dana?")
        (task,) = d.tasks()
        assert task.agent.id == "prior-auth"
        await d.wait_for(
            lambda: any(
                "Still waiting on Bluebridge Health" in m.text
                for m in d.messages(MessageKind.PROGRESS)
            )
        )
        other = await d.ask("What are your opening hours?")
        assert "Ozempic" not in other
        status = await d.ask("What's happening with the Ozempic request?")
        live = d.store.tasks[task.id]
        assert not live.state.is_terminal
        assert "Ozempic" in status
        viewed = [e for e in d.audit.entries if e.type is AuditType.PHI_RECORD_VIEWED]
        assert any(e.channel == "agent:status" and e.task_id == task.id for e in viewed)
        await d.wait_for(lambda: bool(d.messages(MessageKind.FOLLOWUP)), within=30)
        (followup,) = d.messages(MessageKind.FOLLOWUP)
        assert followup.text.startswith(
            "Quick update on the prior auth you asked about earlier — approved"
        )
        assert followup.task_id == task.id
        assert d.store.tasks[task.id].state is TaskState.COMPLETED


async def test_cancelling_the_prior_authorization_withdraws_the_request() -> None:
    async with demo(scale=1.0) as d:
        await d.ask("Start a prior auth for Ozempic for Dana please")
        (task,) = d.tasks()
        await d.wait_for(lambda: d.store.tasks[task.id].state is TaskState.WORKING)
        answer = await d.ask("cancel the background work on Ozempic")
        assert "Ozempic" in answer
        await d.wait_for(lambda: d.store.tasks[task.id].state.is_terminal)
        final = d.store.tasks[task.id]
        assert final.state is TaskState.CANCELLED
        assert len(d.payer.withdrawn) == 1
        assert "withdr" in (final.result or "").lower()


async def test_five_records_are_looked_up_in_parallel_and_cross_referenced() -> None:
    async with demo() as d:
        await d.ask(
            "Look up the records for Dana, Evan, Farah, Gus and Hana and cross-reference them"
        )
        tasks = d.tasks()
        assert len(tasks) == 5
        assert {t.agent.id for t in tasks} == {"records-clerk"}
        await d.wait_for(lambda: bool(d.messages(MessageKind.FOLLOWUP)))
        await anyio.sleep(0.05)
        (answer,) = d.messages(MessageKind.FOLLOWUP)
        for name in ("Dana", "Evan", "Farah", "Gus", "Hana"):
            assert name in answer.text
        assert {t.state for t in d.store.tasks.values()} == {TaskState.COMPLETED}

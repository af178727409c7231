"""Homes: one node at a time runs a conversation; a new home settles what the old one left.

Several hosts on one in-memory store and one lease table play several nodes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio
import pytest

from agents.conversation import Services
from agents.exceptions import Unavailable
from agents.host import ConversationHost
from agents.memory import LeaseTable, MemoryAudit, MemoryBus, MemoryLeases, MemoryStore
from agents.models import Message, MessageKind, TaskState
from agents.settings import RuntimeSettings

from .harness import PERSON, Gate, ScriptedBrain, lab_agents, lab_tools

pytestmark = pytest.mark.anyio


class Cluster:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.table = LeaseTable()
        self.gate = Gate()

    def messages(self, chat_id: str, kind: str) -> list[Message]:
        return [
            e.body
            for e in self.store.events[chat_id]
            if isinstance(e.body, Message) and e.body.kind.value == kind
        ]

    @asynccontextmanager
    async def node(self, name: str, ttl: float = 0.3) -> AsyncIterator[ConversationHost]:
        settings = RuntimeSettings(node_id=name, progress_interval=0.05, cleanup_deadline=1.0)
        services = Services(
            self.store,
            MemoryBus(),
            MemoryAudit(),
            lab_tools(self.gate),
            {"scripted": ScriptedBrain()},
            settings,
        )
        host = ConversationHost(services, MemoryLeases(name, ttl=ttl, table=self.table))
        async with anyio.create_task_group() as tg:
            await tg.start(host.run)
            yield host
            host.stop()


async def wait_for(predicate: object, within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def test_a_node_never_touches_a_live_homes_tasks() -> None:
    c = Cluster()
    await c.store.save_agents(lab_agents())
    async with c.node("a") as a:
        conversation = await a.create_conversation(PERSON)
        async with a.attach(conversation) as runtime:
            await runtime.say(PERSON, "fan 3 gate")
            await wait_for(lambda: len(c.gate.started) == 3)
            async with c.node("b") as b:
                assert await b.recover() == 0
                # Nor when it is asked for the conversation: it is homed on a.
                with pytest.raises(Unavailable):
                    async with b.attach(conversation):
                        pass
                await anyio.sleep(0.5)  # past a lease period: a renews, b's sweep runs
                assert {t.state for t in c.store.tasks.values()} == {TaskState.WORKING}
            c.gate.released.set()
            await wait_for(lambda: bool(c.messages(conversation.chat_id, "followup")))
    assert {t.state for t in c.store.tasks.values()} == {TaskState.COMPLETED}
    assert c.messages(conversation.chat_id, "notice") == []


async def test_a_new_home_interrupts_the_old_homes_tasks_once_and_fences_it() -> None:
    c = Cluster()
    await c.store.save_agents(lab_agents())
    async with c.node("a") as a:
        conversation = await a.create_conversation(PERSON)
        async with a.attach(conversation) as old:
            await old.say(PERSON, "fan 2 gate")
            await wait_for(lambda: len(c.gate.started) == 2)
            # a stops renewing (a pause, a partition): its lease and heartbeat lapse.
            a._keeper.cancel()
            await anyio.sleep(0.7)
            async with c.node("b") as b, b.attach(conversation) as new:
                assert b.interrupted == 2
                assert {t.state for t in c.store.tasks.values()} == {TaskState.INTERRUPTED}
                (notice,) = c.messages(conversation.chat_id, "notice")
                assert "interrupted 2 background tasks" in notice.text
                # The old home's next commit is refused, and it stops running its copy.
                c.gate.released.set()
                with anyio.fail_after(5):
                    await old.wait_stopped()
                assert old.fenced
                assert {t.state for t in c.store.tasks.values()} == {TaskState.INTERRUPTED}
                assert c.messages(conversation.chat_id, "followup") == []
                assert len(c.messages(conversation.chat_id, "notice")) == 1
                # The new home carries on.
                await new.say(PERSON, "hello")
                await wait_for(
                    lambda: any(
                        m.text == "echo: hello" for m in c.messages(conversation.chat_id, "reply")
                    )
                )
    seqs = [e.seq for e in c.store.events[conversation.chat_id]]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_ended_work_without_its_roll_up_gets_it_on_recovery() -> None:
    c = Cluster()
    await c.store.save_agents(lab_agents())
    async with c.node("a") as a:
        conversation = await a.create_conversation(PERSON)
        async with a.attach(conversation) as runtime:
            await runtime.say(PERSON, "fan 3 quick")
            await wait_for(lambda: bool(c.messages(conversation.chat_id, "followup")))
    (rollup,) = c.messages(conversation.chat_id, "followup")
    assert all(t.followed_up for t in c.store.tasks.values())
    # As if the node had died between the last task's end and its roll-up.
    for task in list(c.store.tasks.values()):
        c.store.tasks[task.id] = replace(task, followed_up=False)
    chat = c.store.events[conversation.chat_id]
    chat[:] = [e for e in chat if e.body is not rollup]
    async with c.node("b") as b:
        assert await b.recover() == 0
        await wait_for(lambda: bool(c.messages(conversation.chat_id, "followup")))
        (again,) = c.messages(conversation.chat_id, "followup")
        assert again.kind is MessageKind.FOLLOWUP
        assert again.text == rollup.text  # one roll-up of the three, as the first was
        await wait_for(lambda: all(t.followed_up for t in c.store.tasks.values()))
        assert await b.recover() == 0
        await anyio.sleep(0.2)
        assert len(c.messages(conversation.chat_id, "followup")) == 1


async def test_leases_forgotten_by_redis_move_no_conversation() -> None:
    c = Cluster()
    await c.store.save_agents(lab_agents())
    async with c.node("a") as a:
        conversation = await a.create_conversation(PERSON)
        async with a.attach(conversation) as runtime:
            await runtime.say(PERSON, "fan 2 gate")
            await wait_for(lambda: len(c.gate.started) == 2)
            c.table.holders.clear()  # Redis restarted without its keys
            async with c.node("b") as b:
                assert await b.recover() == 0
                with pytest.raises(Unavailable):
                    async with b.attach(conversation):
                        pass
                await anyio.sleep(0.5)
                assert {t.state for t in c.store.tasks.values()} == {TaskState.WORKING}
                c.gate.released.set()
                await wait_for(lambda: bool(c.messages(conversation.chat_id, "followup")))
            assert not runtime.fenced
    assert {t.state for t in c.store.tasks.values()} == {TaskState.COMPLETED}
    assert c.messages(conversation.chat_id, "notice") == []


async def test_a_socket_alone_starts_no_runtime_and_keeps_one_its_command_started() -> None:
    c = Cluster()
    await c.store.save_agents(lab_agents())
    async with c.node("a", ttl=0.2) as a:
        conversation = await a.create_conversation(PERSON)
        with a.watch(conversation):
            await anyio.sleep(0.3)  # past a lease period: nothing loads it
            assert a.live(conversation.id) is None
            await a.say(PERSON, conversation, "hello")
            runtime = a.live(conversation.id)
            assert runtime is not None
            assert runtime.statistics()["attached"] == 1
            # A second socket on the same conversation, then both close.
            with a.watch(conversation):
                assert runtime.statistics()["attached"] == 2
            assert runtime.statistics()["attached"] == 1
        assert runtime.statistics()["attached"] == 0
        await wait_for(
            lambda: any(m.text == "echo: hello" for m in c.messages(conversation.chat_id, "reply"))
        )


async def test_a_socket_on_a_dead_homes_conversation_takes_it_over_at_once() -> None:
    # Nothing is left running there, so recovery has no reason to take it: the socket does.
    c = Cluster()
    await c.store.save_agents(lab_agents())
    async with c.node("a") as a, c.node("b") as b:
        conversation = await a.create_conversation(PERSON)
        async with a.attach(conversation) as old:
            await old.say(PERSON, "hello")
            with b.watch(conversation):
                await anyio.sleep(0.2)  # b sees a holding it, and leaves it alone
                assert b.live(conversation.id) is None
                a._keeper.cancel()  # a stops renewing: its lease and heartbeat lapse
                await wait_for(lambda: b.live(conversation.id) is not None, within=3)
                runtime = b.live(conversation.id)
                assert runtime is not None
                assert runtime.statistics()["attached"] == 1
                assert b.interrupted == 0
                await b.say(PERSON, conversation, "still there?")
                await wait_for(
                    lambda: any(
                        m.text == "echo: still there?"
                        for m in c.messages(conversation.chat_id, "reply")
                    )
                )

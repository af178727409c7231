"""A stateful model of one person's conversation, and strangers poking at it.

Hypothesis drives the in-memory runtime (``tests/agents/harness.py``) through any
sequence of: connect, say something, start background work (one task, a batch, a
nested tree), instruct a task, cancel one, read its status, list, watch its chat,
disconnect, resume, let the waiting work through, and a stranger's attempts on all of
it. After every step:

- nothing reaches a non-owner: every attempt of theirs is ``NotFound`` (or an empty
  list), is recorded as ``ACCESS_DENIED`` and never as a read, and nothing is
  published to the chat a stranger listens to;
- exactly one ``PHI_RECORD_VIEWED`` per read the person made, and at most one per
  task for the agents' own reads of their tasks' results;
- no chat has a ``seq`` gap, in the store or in what the person's connection got;

and when the conversation ends (the node stops), no task is left running.

Hypothesis runs its steps synchronously; the runtime lives on an event loop in a
blocking portal, on asyncio and on Trio.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agents.exceptions import Conflict, NotFound
from agents.memory import Subscription
from agents.models import Principal, Role, StreamEvent, Task
from agents.ports import AuditType
from tests.agents.harness import PERSON, WS, Lab, lab

STRANGERS = (
    Principal(WS, "sam", Role.PERSON, "Sam"),
    Principal("elsewhere", "pat", Role.PERSON, "Pat"),
    Principal(WS, "worker", Role.AGENT, "Worker"),
    Principal(WS, "bridge", Role.SERVICE, act_for="sam"),
)
LISTENER = STRANGERS[0]
WORK = st.sampled_from(
    ["fan 1 quick", "fan 2 quick", "fan 1 gate", "fan 2 gate", "fan 1 chatty", "nest 2", "nest 3"]
)
SETTLE_S = 5.0
QUIET_S = 0.1


class ConversationMachine(RuleBasedStateMachine):
    backend: ClassVar[str] = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm = start_blocking_portal(self.backend)
        self.portal: BlockingPortal = self._portal_cm.__enter__()
        self._lab_cm = self.portal.wrap_async_context_manager(lab())
        self.lab: Lab = self._lab_cm.__enter__()
        self.chat_id = self.lab.conversation.chat_id
        # Someone else of the workspace, with a conversation of their own, listening.
        theirs = self.call(self.lab.host.create_conversation, LISTENER)
        self._listener_cm, self.listener = self.subscribe(theirs.chat_id)
        self._connection: tuple[AbstractContextManager[Subscription], Subscription] | None = None
        self.seen = 0  # the last seq the person's connection got, without a gap
        self.reads = 0  # reads the person made; each must be on the trail once
        self.attempts = 0  # the strangers' attempts; each must be refused on the trail

    # -- driving the loop ---------------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(fn, *args)

    def subscribe(self, chat_id: str) -> tuple[AbstractContextManager[Subscription], Subscription]:
        cm = self.call(self.lab.bus.subscribe, [chat_id])
        return cm, self.call(cm.__enter__)

    def settle(self) -> None:
        """Wait until the primary agent has acted on everything it was told."""
        runtime = self.lab.runtime

        async def answered() -> None:
            with anyio.fail_after(SETTLE_S):
                while runtime.answering or runtime.statistics()["inbox"]:  # noqa: ASYNC110
                    await anyio.sleep(0.002)

        self.call(answered)

    def drain(self, subscription: Subscription) -> list[StreamEvent]:
        def take() -> list[StreamEvent]:
            got = []
            while True:
                try:
                    got.append(subscription.receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    return got

        return list(self.call(take))

    def tasks(self) -> list[Task]:
        return [t for t in self.lab.store.tasks.values() if t.person_id == PERSON.id]

    def pick_task(self, data: st.DataObject) -> Task:
        """One of the person's tasks. Nested tasks appear in their own time, so the draw
        must not depend on how many there are yet: Hypothesis replays draws."""
        tasks = sorted(self.tasks(), key=lambda t: (t.created_at, t.id))
        return tasks[data.draw(st.integers(0, 63)) % len(tasks)]

    def deliver(self, events: list[StreamEvent]) -> None:
        """What the person's client does with events: skip what it has, never a gap."""
        for event in events:
            assert event.chat_id == self.chat_id, event
            if event.seq <= self.seen:
                continue
            assert event.seq == self.seen + 1, f"gap: got {event.seq} after {self.seen}"
            self.seen = event.seq

    # -- the person's side --------------------------------------------------------------

    @precondition(lambda self: self._connection is None)
    @rule()
    def connect(self) -> None:
        """Connect, or resume after the last seq received: subscribe, then replay."""
        self.call(self._find_own_conversation)
        self._connection = self.subscribe(self.chat_id)
        self.deliver(self.call(self.lab.store.events_after, self.chat_id, self.seen, 10_000))

    async def _find_own_conversation(self) -> None:
        found = await self.lab.host.find_conversation(
            PERSON, self.lab.conversation.id, channel="ws:connect"
        )
        assert found.id == self.lab.conversation.id

    @precondition(lambda self: self._connection is not None)
    @rule()
    def disconnect(self) -> None:
        assert self._connection is not None
        cm, subscription = self._connection
        self.deliver(self.drain(subscription))
        self.call(cm.__exit__, None, None, None)
        self._connection = None

    @rule(text=st.sampled_from(["hello", "how is it going", "thanks"]))
    def say(self, text: str) -> None:
        self.call(self.lab.runtime.say, PERSON, text)
        self.settle()

    @rule(work=WORK)
    def start(self, work: str) -> None:
        self.call(self.lab.runtime.say, PERSON, work)
        self.settle()

    @precondition(lambda self: bool(self.tasks()))
    @rule(data=st.data())
    def instruct(self, data: st.DataObject) -> None:
        task = self.pick_task(data)
        with contextlib.suppress(Conflict):  # it has ended, or is being cancelled
            self.call(self._instruct, task.id)

    async def _instruct(self, task_id: str) -> None:
        await self.lab.host.instruct(PERSON, task_id, "also this", channel="ws:task.instruct")

    @precondition(lambda self: bool(self.tasks()))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task = self.pick_task(data)
        self.call(self._cancel, task.id)

    async def _cancel(self, task_id: str) -> None:
        await self.lab.host.cancel(PERSON, task_id, None, channel="ws:task.cancel")

    @precondition(lambda self: bool(self.tasks()))
    @rule(data=st.data())
    def status(self, data: st.DataObject) -> None:
        task = self.pick_task(data)
        self.call(self._status, task.id)
        self.reads += 1

    async def _status(self, task_id: str) -> None:
        read = await self.lab.host.read_task(PERSON, task_id, channel="ws:task.status")
        assert read.id == task_id

    @rule()
    def list_tasks(self) -> None:
        listed = self.call(self._list)
        self.reads += 1
        assert {t.id for t in listed} <= {t.id for t in self.tasks()}

    async def _list(self) -> list[Task]:
        return await self.lab.host.list_tasks(
            PERSON, self.lab.conversation.id, channel="ws:task.list"
        )

    @precondition(lambda self: bool(self.tasks()))
    @rule(data=st.data())
    def watch(self, data: st.DataObject) -> None:
        task = self.pick_task(data)
        self.call(self._watch, task.chat_id)
        self.reads += 1

    async def _watch(self, chat_id: str) -> None:
        chat = await self.lab.host.open_chat(PERSON, chat_id, channel="ws:watch")
        assert chat.task_id is not None

    @rule()
    def let_waiting_work_through(self) -> None:
        self.call(self.lab.gate.released.set)

    # -- strangers --------------------------------------------------------------------

    @rule(who=st.sampled_from(STRANGERS), data=st.data())
    def stranger_tries(self, who: Principal, data: st.DataObject) -> None:
        task = self.pick_task(data) if self.tasks() else None
        self.attempts += self.call(self._stranger_tries, who, task)

    async def _stranger_tries(self, who: Principal, task: Task | None) -> int:
        host, conversation = self.lab.host, self.lab.conversation
        attempts: list[Callable[[], Any]] = [
            lambda: host.find_conversation(who, conversation.id, channel="ws:connect"),
            lambda: host.open_chat(who, conversation.chat_id, channel="ws:watch"),
        ]
        if task is not None:
            attempts += [
                lambda: host.read_task(who, task.id, channel="ws:task.status"),
                lambda: host.instruct(who, task.id, "mine now", channel="ws:task.instruct"),
                lambda: host.cancel(who, task.id, None, channel="ws:task.cancel"),
                lambda: host.open_chat(who, task.chat_id, channel="ws:watch"),
            ]
        for attempt in attempts:
            with pytest.raises(NotFound):
                await attempt()
        listed = await host.list_tasks(who, conversation.id, channel="ws:task.list")
        assert listed == []
        # A look at another's conversation, one that shows nothing, is a refusal too.
        return len(attempts) + 1

    # -- invariants ---------------------------------------------------------------------

    def entries(self, kind: AuditType, who: Principal | None = None) -> list[Any]:
        return [
            e
            for e in list(self.lab.audit.entries)
            if e.type is kind and (who is None or e.actor == who)
        ]

    @invariant()
    def one_audit_record_per_read(self) -> None:
        assert len(self.entries(AuditType.PHI_RECORD_VIEWED, PERSON)) == self.reads
        assert not self.entries(AuditType.ACCESS_DENIED, PERSON)
        results = Counter(
            e.task_id
            for e in self.entries(AuditType.PHI_RECORD_VIEWED)
            if e.channel == "agent:child_result"
        )
        assert all(n == 1 for n in results.values()), results

    @invariant()
    def nothing_reaches_a_stranger(self) -> None:
        theirs = [e for e in list(self.lab.audit.entries) if e.actor in STRANGERS]
        denied = [e for e in theirs if e.type is AuditType.ACCESS_DENIED]
        assert len(denied) == self.attempts
        for entry in theirs:
            if entry.type is not AuditType.ACCESS_DENIED:
                # Only the agent's own (empty) list of the conversation's tasks.
                assert entry.type is AuditType.PHI_RECORD_VIEWED, entry
                assert (entry.actor.role, entry.task_id, entry.chat_id) == (Role.AGENT, None, None)
        assert self.drain(self.listener) == []

    @invariant()
    def no_seq_gap(self) -> None:
        for chat_id, events in list(self.lab.store.events.items()):
            assert [e.seq for e in events] == list(range(1, len(events) + 1)), chat_id
        if self._connection is not None:
            self.deliver(self.drain(self._connection[1]))

    # -- the end ------------------------------------------------------------------------

    def quiet(self) -> None:
        """Wait until nothing moves any more (or only work waiting at the gate is left)."""
        store, audit = self.lab.store, self.lab.audit

        def footprint() -> tuple[int, int]:
            return (sum(len(e) for e in store.events.values()), len(audit.entries))

        async def wait() -> None:
            with anyio.fail_after(SETTLE_S):
                last, since = footprint(), anyio.current_time()
                while anyio.current_time() - since < QUIET_S:
                    await anyio.sleep(0.01)
                    now = footprint()
                    if now != last or self.lab.runtime.answering:
                        last, since = now, anyio.current_time()

        self.call(wait)

    def teardown(self) -> None:
        try:
            self.quiet()
            self.no_seq_gap()
            # The primary agent reads each finished task of its own once, when the
            # last of its batch has ended; work still waiting has not been read.
            tasks = self.tasks()
            by_batch: dict[str, list[Task]] = {}
            for task in tasks:
                by_batch.setdefault(task.batch_id or task.id, []).append(task)
            read = Counter(
                e.task_id
                for e in self.entries(AuditType.PHI_RECORD_VIEWED)
                if e.channel == "agent:child_result" and e.actor.id == "lead"
            )
            for task in tasks:
                if task.depth != 1:
                    continue
                batch = by_batch[task.batch_id or task.id]
                ended = all(self.lab.store.tasks[t.id].state.is_terminal for t in batch)
                assert read[task.id] == (1 if ended else 0), (task, read)
            if self._connection is not None:
                self.disconnect()
            self.call(self._listener_cm.__exit__, None, None, None)
        finally:
            # The conversation ends with the node: its task group is cancelled.
            self._lab_cm.__exit__(None, None, None)
            try:
                after_stop(self.lab)
            finally:
                self._portal_cm.__exit__(None, None, None)


def after_stop(done: Lab) -> None:
    """No task is left running once the conversation has ended."""
    assert done.runtime.live_tasks == 0
    assert done.host.statistics() == {"live_conversations": 0, "live_tasks": 0}
    for task in done.store.tasks.values():
        assert task.state.is_terminal, task


def machine_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


class TrioConversationMachine(ConversationMachine):
    backend: ClassVar[str] = "trio"


TestConversationOnAsyncio = ConversationMachine.TestCase
TestConversationOnAsyncio.settings = machine_settings(25)
TestConversationOnTrio = TrioConversationMachine.TestCase
TestConversationOnTrio.settings = machine_settings(10)

"""In-memory implementations of the ports: for tests and the terminal demo.

They keep the same promises as the real ones (atomic commits, gapless ``seq``,
bounded subscriber buffers), so that tests written against them hold against
``server/``'s implementations too.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from agents.exceptions import Fenced, HomedElsewhere, NotFound, Unavailable
from agents.models import (
    AgentDefinition,
    Chat,
    Conversation,
    Patient,
    StreamEvent,
    Task,
    TaskState,
    new_id,
    utcnow,
)
from agents.ports import AuditEntry, Changes, Unsettled, home_is_alive


class MemoryStore:
    """A :class:`~agents.ports.Store` and :class:`~agents.ports.PatientDirectory` in dicts.

    A commit has no await between its first write and its last, so it is atomic on
    one event loop.
    """

    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}
        self.chats: dict[str, Chat] = {}
        self.events: dict[str, list[StreamEvent]] = defaultdict(list)
        self.tasks: dict[str, Task] = {}
        self.agents: dict[tuple[str, str], AgentDefinition] = {}
        self.patients: dict[tuple[str, str], Patient] = {}
        self.fences: dict[str, int] = {}
        self.homes: dict[str, str] = {}
        self.heartbeats: dict[str, float] = {}
        """owner → when it last said it was alive (``time.time()``)."""
        self.fail = False
        """Set to make every call raise :class:`Unavailable` (a store outage)."""

    async def _enter(self) -> None:
        await anyio.lowlevel.checkpoint()
        if self.fail:
            raise Unavailable("store unavailable")

    async def create_conversation(self, conversation: Conversation, chat: Chat) -> None:
        await self._enter()
        if conversation.id in self.conversations or chat.id in self.chats:
            raise ValueError("duplicate id")
        self.conversations[conversation.id] = conversation
        self.chats[chat.id] = chat

    async def get_conversation(
        self, workspace_id: str, conversation_id: str
    ) -> Conversation | None:
        await self._enter()
        found = self.conversations.get(conversation_id)
        return found if found is not None and found.workspace_id == workspace_id else None

    async def get_chat(self, workspace_id: str, chat_id: str) -> Chat | None:
        await self._enter()
        found = self.chats.get(chat_id)
        return found if found is not None and found.workspace_id == workspace_id else None

    async def list_chats(self, workspace_id: str, person_id: str) -> list[Chat]:
        await self._enter()
        mine = [
            c
            for c in self.chats.values()
            if c.workspace_id == workspace_id and c.person_id == person_id
        ]
        return sorted(mine, key=lambda c: c.created_at, reverse=True)

    def hurry(self, conversation_id: str) -> None:
        """Nothing is held back here: every commit is written as it comes."""

    async def commit(self, changes: Changes) -> list[StreamEvent]:
        await self._enter()
        fence = changes.fence
        if fence is not None and self.fences.get(fence.conversation_id, 0) != fence.number:
            raise Fenced()
        for chat in changes.chats:
            if chat.id in self.chats:
                raise ValueError("duplicate chat id")
        for chat in changes.chats:
            self.chats[chat.id] = chat
        for task in changes.tasks:
            self.tasks[task.id] = task
        stored = []
        now = utcnow()
        for new in changes.events:
            log = self.events[new.chat_id]
            event = StreamEvent(chat_id=new.chat_id, seq=len(log) + 1, ts=now, body=new.body)
            log.append(event)
            stored.append(event)
        return stored

    async def take_home(
        self, conversation_id: str, owner: str = "", *, alive_within: float | None = None
    ) -> int:
        await self._enter()
        if conversation_id not in self.conversations:
            raise NotFound("conversation")
        home = self.homes.get(conversation_id)
        if (
            alive_within is not None
            and home not in (None, owner)
            and home_is_alive(home, owner, self.heartbeats.get(home), alive_within)
        ):
            raise HomedElsewhere(home)
        self.homes[conversation_id] = owner
        self.fences[conversation_id] = self.fences.get(conversation_id, 0) + 1
        return self.fences[conversation_id]

    async def release_home(self, conversation_id: str, owner: str) -> None:
        await self._enter()
        if self.homes.get(conversation_id) == owner:
            del self.homes[conversation_id]

    async def heartbeat(self, owner: str) -> None:
        await self._enter()
        self.heartbeats[owner] = time.time()

    async def forget_node(self, owner: str) -> None:
        await self._enter()
        self.heartbeats.pop(owner, None)
        for conversation_id in [c for c, o in self.homes.items() if o == owner]:
            del self.homes[conversation_id]

    async def events_after(self, chat_id: str, after: int, limit: int) -> list[StreamEvent]:
        await self._enter()
        # seq n is at index n - 1: the log is gapless by construction.
        return self.events[chat_id][max(after, 0) : max(after, 0) + limit]

    async def last_seq(self, chat_id: str) -> int:
        await self._enter()
        return len(self.events[chat_id])

    async def get_task(self, workspace_id: str, task_id: str) -> Task | None:
        await self._enter()
        found = self.tasks.get(task_id)
        return found if found is not None and found.workspace_id == workspace_id else None

    async def list_tasks(self, workspace_id: str, conversation_id: str) -> list[Task]:
        await self._enter()
        return sorted(
            (
                t
                for t in self.tasks.values()
                if t.workspace_id == workspace_id and t.conversation_id == conversation_id
            ),
            key=lambda t: t.created_at,
        )

    async def unsettled(self) -> list[Unsettled]:
        await self._enter()
        found: dict[tuple[str, str], bool] = {}
        for t in self.tasks.values():
            running = not t.state.is_terminal
            unannounced = (
                t.depth == 1 and t.state is not TaskState.INTERRUPTED and not t.followed_up
            )
            if running or unannounced:
                key = (t.workspace_id, t.conversation_id)
                found[key] = found.get(key, False) or running
        return [Unsettled(w, c, running) for (w, c), running in found.items()]

    async def list_agents(self, workspace_id: str) -> list[AgentDefinition]:
        await self._enter()
        return [a for (ws, _), a in self.agents.items() if ws == workspace_id]

    async def save_agents(self, agents: Sequence[AgentDefinition]) -> None:
        await self._enter()
        for agent in agents:
            self.agents[(agent.workspace_id, agent.id)] = agent

    async def list_patients(self, workspace_id: str) -> list[Patient]:
        await self._enter()
        return [p for (ws, _), p in self.patients.items() if ws == workspace_id]

    async def get_patient(self, workspace_id: str, patient_id: str) -> Patient | None:
        await self._enter()
        return self.patients.get((workspace_id, patient_id))

    async def save_patients(self, patients: Sequence[Patient]) -> None:
        await self._enter()
        for patient in patients:
            self.patients[(patient.workspace_id, patient.id)] = patient


@dataclass(eq=False, slots=True)
class Subscription:
    """One listener's view of some chats' live events, through a bounded stream.

    When the buffer is full the subscription is marked ``overflowed`` and closed: the
    listener (a socket) must then resume from the store, so memory never grows.
    A workspace subscription (``workspace_id`` set, no ``chat_ids``) sees every event
    published in that workspace.
    """

    chat_ids: frozenset[str]
    send: MemoryObjectSendStream[StreamEvent]
    receive: MemoryObjectReceiveStream[StreamEvent]
    overflowed: bool = field(default=False)
    workspace_id: str | None = field(default=None)

    def deliver(self, event: StreamEvent) -> None:
        """Hand *event* on; a full buffer ends the subscription (never blocks, never grows)."""
        if self.overflowed:
            return
        try:
            self.send.send_nowait(event)
        except anyio.WouldBlock:
            self.overflowed = True
            self.send.close()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.overflowed = True

    def end(self) -> None:
        """Close the subscription as if it had overflowed: its listener reloads from the
        store (what it may have missed cannot be told otherwise)."""
        self.overflowed = True
        self.send.close()


@dataclass(eq=False, slots=True)
class Listener:
    """One listener's view of some chats' live events, handed to a callback as they are
    published: no stream, no task. The callback must not block; it returns ``False``
    when it can take no more, and from then on the listener gets nothing (it must
    resume from the store)."""

    chat_ids: frozenset[str]
    take: Callable[[StreamEvent], bool]
    overflowed: bool = field(default=False)

    def deliver(self, event: StreamEvent) -> None:
        if not self.overflowed and not self.take(event):
            self.overflowed = True


class MemoryBus:
    """An in-process :class:`~agents.ports.Publisher` with chat subscriptions, and
    workspace subscriptions for listeners that follow a whole workspace's chats (the
    Chats view, which filters what its principal may see)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription | Listener]] = defaultdict(set)
        self._workspace_subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self.published = 0

    async def publish(self, workspace_id: str, events: Sequence[StreamEvent]) -> None:
        """Deliver at once. Not a checkpoint: it follows the commit of *events*, which
        was one, and a yield here put off what the publisher does next (a say's ``ack``,
        after its message) to another turn of the loop, for about 6 % of a say's CPU
        (P4, BENCHMARKS.md)."""
        self.publish_nowait(events, workspace_id)

    def publish_nowait(
        self, events: Sequence[StreamEvent], workspace_id: str | None = None
    ) -> None:
        """Deliver *events* to their chats' subscribers, and to *workspace_id*'s (when
        known: a catch-up of single chats has no workspace to tell)."""
        following = (
            tuple(self._workspace_subscribers.get(workspace_id, ()))
            if workspace_id is not None
            else ()
        )
        for event in events:
            self.published += 1
            for sub in tuple(self._subscribers.get(event.chat_id, ())):
                sub.deliver(event)
            for sub in following:
                sub.deliver(event)

    @contextmanager
    def subscribe(self, chat_ids: Sequence[str], max_buffer: int = 1024) -> Iterator[Subscription]:
        """Receive the live events of *chat_ids* until the block ends."""
        send, receive = anyio.create_memory_object_stream[StreamEvent](max_buffer)
        sub = Subscription(frozenset(chat_ids), send, receive)
        for chat_id in sub.chat_ids:
            self._subscribers[chat_id].add(sub)
        try:
            yield sub
        finally:
            for chat_id in sub.chat_ids:
                self._subscribers[chat_id].discard(sub)
                if not self._subscribers[chat_id]:
                    del self._subscribers[chat_id]
            send.close()
            receive.close()

    @contextmanager
    def listen(
        self, chat_ids: Sequence[str], take: Callable[[StreamEvent], bool]
    ) -> Iterator[Listener]:
        """Hand the live events of *chat_ids* to *take*, in order, until the block ends."""
        listener = Listener(frozenset(chat_ids), take)
        for chat_id in listener.chat_ids:
            self._subscribers[chat_id].add(listener)
        try:
            yield listener
        finally:
            for chat_id in listener.chat_ids:
                self._subscribers[chat_id].discard(listener)
                if not self._subscribers[chat_id]:
                    del self._subscribers[chat_id]

    @contextmanager
    def subscribe_workspace(
        self, workspace_id: str, max_buffer: int = 1024
    ) -> Iterator[Subscription]:
        """Receive every live event of *workspace_id* until the block ends.

        The listener must filter what it passes on: this sees every chat of the
        workspace, whoever may watch it.
        """
        send, receive = anyio.create_memory_object_stream[StreamEvent](max_buffer)
        sub = Subscription(frozenset(), send, receive, workspace_id=workspace_id)
        self._workspace_subscribers[workspace_id].add(sub)
        try:
            yield sub
        finally:
            self._workspace_subscribers[workspace_id].discard(sub)
            if not self._workspace_subscribers[workspace_id]:
                del self._workspace_subscribers[workspace_id]
            send.close()
            receive.close()

    def end_workspace_subscriptions(self) -> int:
        """End every workspace subscription (see :meth:`Subscription.end`); how many."""
        ended = 0
        for subs in self._workspace_subscribers.values():
            for sub in tuple(subs):
                if not sub.overflowed:
                    sub.end()
                    ended += 1
        return ended

    def statistics(self) -> dict[str, int]:
        return {
            "subscribed_chats": len(self._subscribers),
            "subscribed_workspaces": len(self._workspace_subscribers),
            "published": self.published,
        }


class MemoryAudit:
    """An :class:`~agents.ports.AuditSink` that keeps entries in a list."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []
        self.fail = False
        """Set to make every write raise :class:`Unavailable` (the trail is down)."""

    async def record(self, entry: AuditEntry) -> None:
        await self.record_many((entry,))

    async def record_many(self, entries: Sequence[AuditEntry]) -> None:
        await anyio.lowlevel.checkpoint()
        if self.fail:
            raise Unavailable("audit trail unavailable")
        self.entries.extend(entries)


class LeaseTable:
    """The leases of every :class:`MemoryLeases` that shares it: one process's Redis."""

    def __init__(self) -> None:
        self.holders: dict[str, tuple[str, float]] = {}
        """conversation id → (owner, expiry on the event loop's clock)."""


class MemoryLeases:
    """In-process :class:`~agents.ports.Leases`: the single node's, with no Redis.

    Processes cannot share it, so on its own every lease is this node's; tests give
    several hosts one :class:`LeaseTable` to play several nodes in one process.
    """

    def __init__(
        self, node_id: str = "local", *, ttl: float = 5.0, table: LeaseTable | None = None
    ) -> None:
        self.owner = f"{node_id}/{new_id('run')}"
        self.ttl = ttl
        self.table = table or LeaseTable()

    def _holder(self, conversation_id: str) -> str | None:
        held = self.table.holders.get(conversation_id)
        if held is None or held[1] <= anyio.current_time():
            return None
        return held[0]

    async def acquire(self, conversation_id: str) -> bool:
        await anyio.lowlevel.checkpoint()
        if self._holder(conversation_id) not in (None, self.owner):
            return False
        self.table.holders[conversation_id] = (self.owner, anyio.current_time() + self.ttl)
        return True

    async def renew(self, conversation_ids: Sequence[str]) -> list[str]:
        await anyio.lowlevel.checkpoint()
        lost = []
        for conversation_id in conversation_ids:
            if self._holder(conversation_id) not in (None, self.owner):
                lost.append(conversation_id)
            else:
                self.table.holders[conversation_id] = (
                    self.owner,
                    anyio.current_time() + self.ttl,
                )
        return lost

    async def release(self, conversation_id: str) -> None:
        await anyio.lowlevel.checkpoint()
        if self._holder(conversation_id) == self.owner:
            del self.table.holders[conversation_id]

    async def holders(self, conversation_ids: Sequence[str]) -> dict[str, str | None]:
        await anyio.lowlevel.checkpoint()
        return {c: self._holder(c) for c in conversation_ids}

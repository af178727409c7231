"""The node's conversations, and every path by which a principal reaches a task or chat.

``ConversationHost`` owns the node task group: each live conversation runs in it, is
brought back from the store on demand and dropped when idle. Every read, instruction
or cancel of a task, and every look at a chat, goes through the one ownership check
(:mod:`agents.ownership`) *before* any record leaves, and is audited: a
``PHI_RECORD_VIEWED`` before contents are returned (fail closed), an
``ACCESS_DENIED`` for a refusal, which looks exactly like an id that never existed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import NoReturn, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from agents.commands import Answer, CancelTask, Command, InstructTask, InterruptTurn, SayText
from agents.conversation import ConversationRuntime, Services
from agents.exceptions import (
    Conflict,
    HomedElsewhere,
    NotFound,
    NotHome,
    SwitchboardError,
    Unavailable,
    first_type,
)
from agents.memory import MemoryLeases
from agents.models import (
    Chat,
    ChatKind,
    Conversation,
    Principal,
    StreamEvent,
    Task,
    TaskState,
    TaskUpdate,
    interruption_notice,
    new_id,
    utcnow,
)
from agents.ownership import (
    may_access_chat,
    may_access_conversation,
    may_access_task,
    principal_scope,
)
from agents.ports import (
    AuditEntry,
    AuditOutcome,
    AuditReason,
    AuditType,
    Changes,
    Fence,
    Leases,
    NewEvent,
    Relay,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class VisibleChat:
    """A chat a principal may see, with its task when it is a task's chat."""

    chat: Chat
    task: Task | None


@dataclass(eq=False, slots=True)
class _Watch:
    """The sockets open on one conversation here (:meth:`ConversationHost.watch`)."""

    conversation: Conversation
    sockets: int = 0
    homed_elsewhere: bool = False
    """Whether another node was seen holding its lease: taken over once that lapses."""


class ConversationHost:
    """Runs this node's live conversations; start it with ``await tg.start(host.run)``.

    A conversation runs here only while this node holds its lease (*leases*; the
    in-process :class:`~agents.memory.MemoryLeases` by default, for a single node).
    Taking a lease is taking the conversation over: its fencing number moves up in
    the store, and whatever its former home left unsettled — tasks still running
    there, work that ended without its follow-up — is settled here, once.
    """

    def __init__(
        self, services: Services, leases: Leases | None = None, relay: Relay | None = None
    ) -> None:
        self.services = services
        self.relay = relay
        self.store = services.store
        self.leases: Leases = leases or MemoryLeases(services.settings.node_id)
        self._lease_period = self.leases.ttl
        self._live: dict[str, ConversationRuntime] = {}
        self._ended: dict[str, anyio.Event] = {}
        self._loading: dict[str, anyio.Lock] = {}
        # Conversations this process brought back to follow up ended work: each once,
        # so a follow-up that keeps failing is not retried (and announced) forever.
        self._followed_up: set[str] = set()
        # How many sockets are open on each conversation here (watch()); a runtime
        # started here is attached that many times, so it stays live while they are.
        self._watching: dict[str, _Watch] = {}
        self._tg: TaskGroup | None = None
        # Cancelled only to play a node that stops renewing (a pause, a partition).
        self._keeper = anyio.CancelScope()
        self._stopped = anyio.Event()
        self.interrupted = 0
        """How many tasks this node found orphaned by a dead home and interrupted."""
        self.takeovers = 0
        """How many conversations this node took over with such tasks."""

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hold the node task group until cancelled; then every conversation stops.

        Meanwhile it renews this node's leases and, once a lease period, takes over the
        conversations whose home has died with work unsettled (:meth:`recover`).
        """
        try:
            try:
                await self.store.heartbeat(self.leases.owner)
            except SwitchboardError as exc:
                log.warning("heartbeat failed", extra={"error": exc.code})
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._keep_leases)
                tg.start_soon(self._follow_homes)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            # Every conversation has stopped and let go: this process is no one's home.
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                try:
                    await self.store.forget_node(self.leases.owner)
                except SwitchboardError as exc:
                    log.warning("node not forgotten", extra={"error": exc.code})
            self._stopped.set()

    async def _keep_leases(self) -> None:
        with self._keeper:
            await self._renew_forever()

    async def _renew_forever(self) -> None:
        period = self._lease_period
        failing: set[str] = set()
        last_sweep = anyio.current_time()
        while True:
            await anyio.sleep(period / 3)
            # Each step on its own: a store that is away must not stop the leases'
            # renewal, nor a Redis that is away the heartbeat.
            await self._step("heartbeat", failing, self.store.heartbeat(self.leases.owner))
            lost = await self._step("leases", failing, self.leases.renew(list(self._live)))
            for conversation_id in lost or ():
                # Another node holds the lease. If the store still names us home, it
                # backs off and we take the lease again at the next renewal; if it took
                # the conversation over, our next commit is fenced and our copy stops.
                log.info("lease held elsewhere", extra={"conversation_id": conversation_id})
            if anyio.current_time() - last_sweep >= period:
                last_sweep = anyio.current_time()
                await self._step("recovery", failing, self.recover())

    async def _step(self, name: str, failing: set[str], step: Awaitable[_T]) -> _T | None:
        """Await *step*; log its failure once per outage (by code), and its return."""
        try:
            result = await step
        except SwitchboardError as exc:
            # Redis or the store away: the conversations homed here go on (the store's
            # fence keeps them safe); this is tried again a third of a lease later.
            if name not in failing:
                log.warning("upkeep failing", extra={"step": name, "error": exc.code})
                failing.add(name)
            return None
        if name in failing:
            log.info("upkeep working again", extra={"step": name})
            failing.discard(name)
        return result

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` has returned (every conversation has wound down)."""
        await self._stopped.wait()

    def stop(self) -> None:
        """Stop every conversation: running tasks are cleaned up and stored ``interrupted``."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def statistics(self) -> dict[str, int]:
        return {
            "live_conversations": len(self._live),
            "live_tasks": sum(rt.live_tasks for rt in self._live.values()),
        }

    # -- conversations ---------------------------------------------------------------

    async def create_conversation(
        self, principal: Principal, agent_id: str | None = None
    ) -> Conversation:
        """Start a conversation for *principal*'s person with a primary agent.

        Raises :class:`NotFound` for an agent that is not one of the workspace's, or a
        principal that is not (or does not act for) a person.
        """
        person = principal.person_id
        if person is None:
            raise NotFound("agent")
        agents = await self.store.list_agents(principal.workspace_id)
        if agent_id is None:
            primary = next((a for a in agents if a.primary), None)
        else:
            primary = next((a for a in agents if a.id == agent_id), None)
        if primary is None:
            raise NotFound("agent")
        now = utcnow()
        conversation = Conversation(
            id=new_id("conv"),
            workspace_id=principal.workspace_id,
            person_id=person,
            agent_id=primary.id,
            chat_id=new_id("chat"),
            created_at=now,
        )
        chat = Chat(
            id=conversation.chat_id,
            workspace_id=conversation.workspace_id,
            conversation_id=conversation.id,
            kind=ChatKind.CONVERSATION,
            title=primary.name,
            agent=primary.author,
            person_id=person,
            created_at=now,
        )
        await self.store.create_conversation(conversation, chat)
        return conversation

    async def find_conversation(
        self, principal: Principal, conversation_id: str, *, channel: str
    ) -> Conversation:
        """The conversation if *principal* may reach it; else :class:`NotFound` (audited)."""
        conversation = await self.store.get_conversation(principal.workspace_id, conversation_id)
        if conversation is None or not may_access_conversation(principal, conversation):
            await self._deny(
                principal, channel, conversation_id=conversation_id, exists=conversation is not None
            )
            raise NotFound("conversation")
        return conversation

    @asynccontextmanager
    async def attach(self, conversation: Conversation) -> AsyncIterator[ConversationRuntime]:
        """Keep *conversation* live (loading it if need be) while the block runs."""
        runtime = await self._runtime(conversation)
        runtime.attach()
        try:
            yield runtime
        finally:
            runtime.detach()

    async def _runtime(self, conversation: Conversation) -> ConversationRuntime:
        runtime = await self._take(conversation)
        if runtime is None:
            raise Unavailable("the conversation is homed on another node")
        return runtime

    async def _take(self, conversation: Conversation) -> ConversationRuntime | None:
        """The conversation's live runtime here, taking it over if its lease is free.

        ``None`` if another live node is its home. Raises ``Unavailable`` if the
        leases or the store cannot be reached.
        """
        lock = self._loading.setdefault(conversation.id, anyio.Lock())
        async with lock:
            runtime = self._live.get(conversation.id)
            if runtime is not None:
                if not runtime.stopping:
                    return runtime
                # Its last commits (interrupted tasks) land first, under its own fence,
                # and its lease is let go before it is taken again.
                await self._ended[conversation.id].wait()
            if not await self.leases.acquire(conversation.id):
                return None
            try:
                fence = await self.store.take_home(
                    conversation.id, self.leases.owner, alive_within=self._lease_period
                )
                source = self.services.workspaces
                kit = None if source is None else await source.kit(conversation.workspace_id)
                agents = (
                    kit.agents
                    if kit is not None
                    else await self.store.list_agents(conversation.workspace_id)
                )
                tasks = await self.store.list_tasks(conversation.workspace_id, conversation.id)
                tasks = await self._settle_orphans(conversation, tasks, fence)
                runtime = ConversationRuntime(
                    conversation, agents, self.services, tasks, fence=fence
                )
                if kit is not None:
                    runtime.use_kit(kit)
                assert self._tg is not None, "the host is not running"
                await self._tg.start(self._run_conversation, runtime)
            except BaseException:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await self._release(conversation.id)
                raise
            return runtime

    async def _settle_orphans(
        self, conversation: Conversation, tasks: list[Task], fence: int
    ) -> list[Task]:
        """Interrupt the tasks a former home left running, and tell the person once.

        Only a new home calls this, under the fence it has just taken: the former
        home is dead (its lease lapsed) or can no longer commit, so nothing runs them.
        """
        orphans = [t for t in tasks if not t.state.is_terminal]
        if not orphans:
            return tasks
        now = utcnow()
        updated = {
            t.id: replace(t, state=TaskState.INTERRUPTED, result=None, updated_at=now)
            for t in orphans
        }
        events: list[NewEvent] = []
        for task in updated.values():
            events.append(NewEvent(task.chat_id, TaskUpdate(task)))
            events.append(NewEvent(conversation.chat_id, TaskUpdate(task)))
        events.append(NewEvent(conversation.chat_id, interruption_notice(len(updated))))
        stored = await self.store.commit(
            Changes(
                tasks=list(updated.values()),
                events=events,
                fence=Fence(conversation.id, fence),
            )
        )
        self.interrupted += len(updated)
        self.takeovers += 1
        log.info(
            "interrupted a former home's tasks",
            extra={"conversation_id": conversation.id, "count": len(updated)},
        )
        try:
            await self.services.publisher.publish(conversation.workspace_id, stored)
        except Exception as exc:
            log.warning("publish failed", extra={"error": type(exc).__name__})
        return [updated.get(t.id, t) for t in tasks]

    async def _run_conversation(
        self, runtime: ConversationRuntime, *, task_status: TaskStatus[None]
    ) -> None:
        conversation_id = runtime.conversation.id
        self._live[conversation_id] = runtime
        self._ended[conversation_id] = ended = anyio.Event()
        watch = self._watching.get(conversation_id)
        if watch is not None:
            runtime.attach(watch.sockets)
        try:
            await runtime.run(task_status=task_status)
        except* Exception as group:
            # runtime.run is the conversation's own fault boundary; this one only makes
            # sure that nothing of one conversation ever reaches the node's group.
            log.error(
                "conversation failed unexpectedly",
                extra={"conversation_id": conversation_id, "error": first_type(group)},
            )
        finally:
            if self._live.get(conversation_id) is runtime:
                del self._live[conversation_id]
                del self._ended[conversation_id]
                if not runtime.fenced:
                    # Let go at once (a graceful stop, an idle conversation): another
                    # node may take the conversation without waiting for it to lapse.
                    with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                        try:
                            await self.store.release_home(conversation_id, self.leases.owner)
                        except SwitchboardError as exc:
                            log.warning("home not released", extra={"error": exc.code})
                        await self._release(conversation_id)
            ended.set()

    async def _release(self, conversation_id: str) -> None:
        try:
            await self.leases.release(conversation_id)
        except SwitchboardError as exc:
            log.warning(
                "lease not released", extra={"conversation_id": conversation_id, "error": exc.code}
            )

    def live(self, conversation_id: str) -> ConversationRuntime | None:
        runtime = self._live.get(conversation_id)
        return None if runtime is None or runtime.stopping else runtime

    # -- tasks -----------------------------------------------------------------------

    async def find_task(
        self,
        principal: Principal,
        task_id: str,
        *,
        channel: str,
        conversation_id: str | None = None,
    ) -> Task:
        """The task if *principal* owns it (no audit); else :class:`NotFound` (audited).

        This is the one ownership check of every path to a task. With
        *conversation_id* (a conversation's socket), a task of another conversation
        is not found either. The store is read, never a runtime's copy: it is what
        every node sees, and a runtime only ever changes a task once it is stored.
        """
        task = await self.store.get_task(principal.workspace_id, task_id)
        if task is None or not may_access_task(principal, task):
            await self._deny(principal, channel, task_id=task_id, exists=task is not None)
            raise NotFound("task")
        if conversation_id is not None and task.conversation_id != conversation_id:
            raise NotFound("task")
        return task

    async def read_task(
        self,
        principal: Principal,
        task_id: str,
        *,
        channel: str,
        conversation_id: str | None = None,
    ) -> Task:
        """Read one task's contents: owner only, audited before it is returned."""
        task = await self.find_task(
            principal, task_id, channel=channel, conversation_id=conversation_id
        )
        await self._viewed(
            principal,
            channel,
            task_id=task.id,
            chat_id=task.chat_id,
            conversation_id=task.conversation_id,
        )
        return task

    async def list_tasks(
        self, principal: Principal, conversation_id: str, *, channel: str
    ) -> list[Task]:
        """The conversation's tasks *principal* may see; one audited read (titles are PHI).

        An unknown or foreign conversation gives an empty list, like one without tasks.
        """
        conversation = await self.store.get_conversation(principal.workspace_id, conversation_id)
        tasks: list[Task] = []
        if conversation is not None:
            # The store, even where the conversation is live: a runtime keeps only the
            # tasks it still needs, and changes none before it is stored.
            stored = await self.store.list_tasks(principal.workspace_id, conversation_id)
            tasks = [t for t in stored if may_access_task(principal, t)]
        # The conversation's people see its list (empty or not); an agent sees the tasks
        # it started there. For anyone else the conversation does not exist: the same
        # empty list as a random id's, and a refusal in the trail, not a read.
        visible = conversation is not None and (
            bool(tasks) or may_access_conversation(principal, conversation)
        )
        if not visible:
            await self._deny(
                principal, channel, conversation_id=conversation_id, exists=conversation is not None
            )
            return []
        await self._viewed(principal, channel, conversation_id=conversation_id)
        return tasks

    async def instruct(
        self,
        principal: Principal,
        task_id: str,
        text: str,
        *,
        channel: str,
        conversation_id: str | None = None,
    ) -> StreamEvent:
        """Send new instructions to a running task (owner only), wherever it runs.

        Raises ``NotFound``, ``Conflict`` (the task has ended), ``RateLimited``, or
        ``Unavailable`` when its home cannot be reached.
        """
        task = await self.find_task(
            principal, task_id, channel=channel, conversation_id=conversation_id
        )
        if task.state.is_terminal:
            raise Conflict("the task has already ended")
        answer = await self._at_home(
            task.workspace_id, task.conversation_id, principal, InstructTask(task_id, text, channel)
        )
        assert isinstance(answer, StreamEvent)
        return answer

    async def cancel(
        self,
        principal: Principal,
        task_id: str,
        reason: str | None,
        *,
        channel: str,
        conversation_id: str | None = None,
    ) -> Task:
        """Cancel a task (owner only); idempotent. Returns it ``cancelling`` or terminal."""
        task = await self.find_task(
            principal, task_id, channel=channel, conversation_id=conversation_id
        )
        if task.state.is_terminal:
            return task
        answer = await self._at_home(
            task.workspace_id, task.conversation_id, principal, CancelTask(task_id, reason, channel)
        )
        assert isinstance(answer, Task)
        return answer

    async def say(self, principal: Principal, conversation: Conversation, text: str) -> StreamEvent:
        """The person's turn, stored and queued by the conversation's home (wherever).

        The caller has found the conversation (:meth:`find_conversation`). Raises
        ``RateLimited`` when too many turns wait, ``Unavailable`` if the home is away.
        """
        answer = await self._at_home(
            conversation.workspace_id, conversation.id, principal, SayText(text)
        )
        assert isinstance(answer, StreamEvent)
        return answer

    async def interrupt_turn(self, principal: Principal, conversation: Conversation) -> bool:
        """Barge-in on the reply being produced, wherever; whether there was one."""
        answer = await self._at_home(
            conversation.workspace_id, conversation.id, principal, InterruptTurn()
        )
        return bool(answer)

    # -- the one door: every command reaches the runtime here ------------------------

    async def _at_home(
        self, workspace_id: str, conversation_id: str, principal: Principal, command: Command
    ) -> Answer:
        """Run *command* on the conversation's home: here (taking it over if its lease
        is free) or, through the relay, on the node that holds it."""
        conversation: Conversation | None = None
        for _ in range(3):
            runtime = self.live(conversation_id)
            if runtime is not None:
                return await self.run_command(runtime, principal, command)
            if conversation is None:
                conversation = await self.store.get_conversation(workspace_id, conversation_id)
                if conversation is None:
                    raise NotFound("conversation")
            holder = (await self.leases.holders([conversation_id])).get(conversation_id)
            if holder in (None, self.leases.owner):
                try:
                    runtime = await self._take(conversation)
                except HomedElsewhere as elsewhere:
                    holder = elsewhere.owner  # Redis forgot its lease; the store did not
                else:
                    if runtime is not None:
                        return await self.run_command(runtime, principal, command)
                    continue  # another node took the lease meanwhile: look again
            if self.relay is None or holder is None:
                raise Unavailable("the conversation is homed on another node")
            try:
                return await self.relay.forward(holder, conversation, principal, command)
            except NotHome:
                continue  # it has just let go: take it, or follow its new home
        raise Unavailable("the conversation's home could not be reached")

    async def run_relayed(
        self, workspace_id: str, conversation_id: str, principal: Principal, command: Command
    ) -> Answer:
        """Run a command another node relayed here, as this conversation's home.

        Raises :class:`NotHome` if it does not run here (any more): the sender looks
        for its home again. The sender's host has checked who may ask.
        """
        runtime = self.live(conversation_id)
        if runtime is None or runtime.conversation.workspace_id != workspace_id:
            raise NotHome()
        return await self.run_command(runtime, principal, command)

    async def run_command(
        self, runtime: ConversationRuntime, principal: Principal, command: Command
    ) -> Answer:
        if isinstance(command, SayText):
            return await runtime.say(principal, command.text)
        if isinstance(command, InstructTask):
            return await runtime.instruct(
                principal, command.task_id, command.text, channel=command.channel
            )
        if isinstance(command, CancelTask):
            return await runtime.cancel(
                principal, command.task_id, command.reason, channel=command.channel
            )
        assert isinstance(command, InterruptTurn)
        return runtime.interrupt_turn()

    @contextmanager
    def watch(self, conversation: Conversation) -> Iterator[None]:
        """While a socket is open on *conversation*: keep it live if it is live here,
        and take it over as soon as its home's lease lapses if another node held it.

        A socket does not start the conversation: its first command does
        (:meth:`_at_home`), so an idle socket costs no runtime.
        """
        watch = self._watching.get(conversation.id)
        if watch is None:
            watch = self._watching[conversation.id] = _Watch(conversation)
        watch.sockets += 1
        runtime = self._live.get(conversation.id)
        if runtime is not None:
            runtime.attach()
        try:
            yield
        finally:
            watch.sockets -= 1
            if watch.sockets == 0:
                del self._watching[conversation.id]
            runtime = self._live.get(conversation.id)
            if runtime is not None:
                runtime.detach()

    async def _follow_homes(self) -> NoReturn:
        """Take over, at once, the watched conversations whose home elsewhere has died.

        One look at the leases of every watched conversation that is not live here,
        four times a lease period, whatever the number of sockets. A conversation whose
        lease another node held is taken once that lease is free (the store's heartbeat
        check refuses a home that is still alive); one no node holds is left to its
        first command.
        """
        period = self._lease_period
        while True:
            await anyio.sleep(period / 4)
            away = [w for w in self._watching.values() if w.conversation.id not in self._live]
            if not away:
                continue
            try:
                holders = await self.leases.holders([w.conversation.id for w in away])
            except SwitchboardError:
                continue  # the leases are away: look again soon
            for watch in away:
                holder = holders.get(watch.conversation.id)
                if holder not in (None, self.leases.owner):
                    watch.homed_elsewhere = True
                    continue
                if not watch.homed_elsewhere or watch.conversation.id in self._live:
                    continue
                try:
                    if await self._take(watch.conversation) is not None:
                        watch.homed_elsewhere = False
                except SwitchboardError:
                    pass  # the store or the leases are away, or the home lives: later

    # -- chats -----------------------------------------------------------------------

    async def find_chat(self, principal: Principal, chat_id: str, *, channel: str) -> Chat:
        """The chat if *principal* may watch it; else :class:`NotFound` (audited)."""
        chat = await self.store.get_chat(principal.workspace_id, chat_id)
        seen = None if chat is None else await self._visible(principal, chat)
        if chat is None or seen is None:
            await self._deny(principal, channel, chat_id=chat_id, exists=chat is not None)
            raise NotFound("chat")
        return chat

    async def visible_chat(self, principal: Principal, chat_id: str) -> VisibleChat | None:
        """The chat (and its task, for a task's chat) if *principal* may see it, else
        ``None``; no audit. For a listener that follows a workspace's live events (the
        Chats view), which meets every chat of the workspace, not a look the principal
        asked for: it audits what it passes on, and a chat it drops is never shown.
        """
        chat = await self.store.get_chat(principal.workspace_id, chat_id)
        return None if chat is None else await self._visible(principal, chat)

    async def _visible(self, principal: Principal, chat: Chat) -> VisibleChat | None:
        # The one check (agents.ownership), with the record it needs.
        if chat.kind is ChatKind.TASK and chat.task_id is not None:
            task = await self.store.get_task(principal.workspace_id, chat.task_id)
            if may_access_chat(principal, chat, task=task, conversation=None):
                return VisibleChat(chat, task)
            return None
        conversation = await self.store.get_conversation(
            principal.workspace_id, chat.conversation_id
        )
        if may_access_chat(principal, chat, task=None, conversation=conversation):
            return VisibleChat(chat, None)
        return None

    async def open_chat(self, principal: Principal, chat_id: str, *, channel: str) -> Chat:
        """Check and audit a look at a chat's contents (a watch socket, an HTTP read)."""
        chat = await self.find_chat(principal, chat_id, channel=channel)
        await self._viewed(
            principal,
            channel,
            chat_id=chat.id,
            task_id=chat.task_id,
            conversation_id=chat.conversation_id,
        )
        return chat

    async def list_chats(self, principal: Principal, *, channel: str) -> list[Chat]:
        """The chats *principal* may see (the Chats view), newest first; an audited read."""
        person = principal.person_id
        chats = (
            [] if person is None else await self.store.list_chats(principal.workspace_id, person)
        )
        if principal_scope(principal) is not None:
            # A patient's (or a caller's) Chats view holds no work about another patient.
            kept = []
            for chat in chats:
                task = None
                if chat.task_id is not None:
                    task = await self.store.get_task(principal.workspace_id, chat.task_id)
                if chat.kind is not ChatKind.TASK or may_access_chat(
                    principal, chat, task=task, conversation=None
                ):
                    kept.append(chat)
            chats = kept
        await self._viewed(principal, channel)
        return chats

    # -- recovery --------------------------------------------------------------------

    async def recover(self) -> int:
        """Take over every conversation whose home is gone and left work unsettled.

        That is a conversation with a task still running in the store, or with ended
        work whose follow-up was never stored, and whose lease is free: its tasks are
        interrupted and the person told (:meth:`_settle_orphans`), the follow-up comes.
        A conversation a live node holds is never touched. Returns how many tasks
        were interrupted.
        """
        pending = {
            u.conversation_id: u.workspace_id
            for u in await self.store.unsettled()
            if u.running or u.conversation_id not in self._followed_up
        }
        candidates = [c for c in pending if c not in self._live]
        if not candidates:
            return 0
        holders = await self.leases.holders(candidates)
        before = self.interrupted
        for conversation_id in candidates:
            if holders.get(conversation_id) not in (None, self.leases.owner):
                continue
            conversation = await self.store.get_conversation(
                pending[conversation_id], conversation_id
            )
            if conversation is None:
                continue
            self._followed_up.add(conversation_id)
            try:
                await self._take(conversation)
            except SwitchboardError as exc:
                log.warning(
                    "recovery deferred",
                    extra={"conversation_id": conversation_id, "error": exc.code},
                )
        return self.interrupted - before

    # -- audit -----------------------------------------------------------------------

    async def _viewed(
        self,
        principal: Principal,
        channel: str,
        *,
        task_id: str | None = None,
        chat_id: str | None = None,
        conversation_id: str | None = None,
    ) -> None:
        # Written before the contents leave; if it cannot be written, this raises
        # Unavailable and the read does not happen (fail closed).
        await self.services.audit.record(
            AuditEntry(
                type=AuditType.PHI_RECORD_VIEWED,
                actor=principal,
                channel=channel,
                task_id=task_id,
                chat_id=chat_id,
                conversation_id=conversation_id,
                on_behalf_of=_chain(principal),
            )
        )

    async def _deny(
        self,
        principal: Principal,
        channel: str,
        *,
        exists: bool,
        task_id: str | None = None,
        chat_id: str | None = None,
        conversation_id: str | None = None,
    ) -> None:
        # The caller sees not_found either way; only the trail tells the two apart.
        await self.services.audit.record(
            AuditEntry(
                type=AuditType.ACCESS_DENIED,
                actor=principal,
                channel=channel,
                outcome=AuditOutcome.DENIED,
                reason=AuditReason.NOT_OWNER if exists else AuditReason.NO_SUCH_RECORD,
                task_id=task_id,
                chat_id=chat_id,
                conversation_id=conversation_id,
                on_behalf_of=_chain(principal),
            )
        )


def _chain(principal: Principal) -> tuple[str, ...]:
    return (principal.act_for,) if principal.act_for else ()

"""A live conversation's runtime: its life, its tasks, and storing what happens in it.

One task group per conversation (the per-conversation nursery) holds the primary
agent's loop (:mod:`agents.primary`) and every depth-1 task's scope. The runtime is
the kernel that the primary agent and the task runners use through its public
methods: it stores and announces messages and task updates, starts, instructs and
cancels tasks, audits the agents' reads, and stops the conversation once idle.

Invariants:

* Every change is stored, then published, in the order it was asked for
  (:meth:`ConversationRuntime.commit`): changes queue, and whoever holds the
  conversation's lock stores all that are queued in one commit and publishes them in
  one call, so that live events reach listeners in ``seq`` order and a burst of
  updates (a subtree's terminal states, many sub-agents' progress) costs one round
  trip to the store, not one each. A task's record never goes backwards: each change is
  made to the record as the changes queued before it leave it, and after a terminal
  state updates are ignored (the first terminal state wins).
* ``_tasks`` holds the latest stored record of every task of the conversation that is
  not yet settled, and of the last :data:`RECENT_TASKS` settled depth-1 tasks (for the
  brain's summaries); ``_runners`` holds exactly the tasks whose runner has not ended.
  A task is settled once it has ended and no one here needs it again: a depth-1 task
  once followed up, a sub-task once its parent has ended (the parent reads its result
  first). What a live conversation holds depends on what it is doing, not on how much
  it has done; the store has the rest.
* The conversation is idle when no socket is attached, no runner is live and the
  primary agent's inbox is empty; it stops once idle for ``idle_grace``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import anyio
from anyio.abc import TaskGroup, TaskStatus

from agents.brains import Assignment, Brain, ToolInfo
from agents.callers import CallerDesk
from agents.exceptions import (
    Conflict,
    DepthLimitExceeded,
    Fenced,
    NotFound,
    RateLimited,
    SwitchboardError,
    Unavailable,
    first_type,
)
from agents.models import (
    SERVER_AUTHOR,
    AgentDefinition,
    Author,
    Chat,
    ChatKind,
    Conversation,
    Message,
    MessageDelta,
    MessageKind,
    MessageRole,
    Principal,
    Role,
    Step,
    StepAction,
    StreamEvent,
    Task,
    TaskState,
    TaskUpdate,
    interruption_notice,
    new_id,
    utcnow,
)
from agents.ownership import may_access_task, may_call_about
from agents.ports import (
    AuditEntry,
    AuditReason,
    AuditSink,
    AuditType,
    Changes,
    Fence,
    NewEvent,
    NoObserver,
    Observer,
    PatientDirectory,
    Publisher,
    Store,
    WorkspaceKit,
    WorkspaceSource,
)
from agents.primary import PrimaryAgent
from agents.settings import RuntimeSettings
from agents.states import can_move
from agents.tasks import TaskRunner
from agents.tools import ToolBox

log = logging.getLogger(__name__)

RECENT_TASKS = 20
"""How many settled depth-1 tasks a live conversation keeps in memory, newest first, so
that its brain can still speak of finished work ("how did the prior auth go?")."""


@dataclass(frozen=True, slots=True)
class Services:
    """What a conversation needs from the node: the ports, the tools and the brains."""

    store: Store
    publisher: Publisher
    audit: AuditSink
    toolbox: ToolBox
    brains: Mapping[str, Brain]
    settings: RuntimeSettings
    workspaces: WorkspaceSource | None = None
    """Each workspace's current agents, tools and brains; without it, the ones above."""
    observer: Observer = field(default_factory=NoObserver)
    """Where turn and task durations go (the node's metrics)."""
    directory: PatientDirectory | None = None
    """The whole patient directory, against which phone callers are verified
    (:mod:`agents.callers`); without it no caller can be."""


Records = dict[str, Task]
"""Task records as the changes queued so far in a group will leave them."""


@dataclass(eq=False, slots=True)
class _Queued:
    """One commit waiting for its place in the conversation's next group of commits."""

    build: Callable[[Records], Changes | None]
    """Called in queue order, under the lock, with the records as the commits before it
    in the group leave them (which it updates with its own): what to store, or ``None``."""
    then: Callable[[list[StreamEvent]], None] | None = None
    """Called with its stored events once the group is stored, before it is published."""
    background: bool = False
    """Whether what it builds is a background commit (a progress flush)."""
    stored: list[StreamEvent] = field(default_factory=list)
    error: SwitchboardError | None = None
    taken: bool = False


class ConversationRuntime:
    """The runtime of one conversation; start it with ``await tg.start(rt.run)``."""

    def __init__(
        self,
        conversation: Conversation,
        agents: Sequence[AgentDefinition],
        services: Services,
        tasks: Sequence[Task] = (),
        *,
        fence: int | None = None,
    ) -> None:
        self.conversation = conversation
        self.services = services
        self.settings = services.settings
        self.toolbox = services.toolbox
        self._brains = services.brains
        self._kit_revision: int | None = None
        self._tool_infos: tuple[ToolBox, tuple[ToolInfo, ...]] | None = None
        self._agents = {a.id: a for a in agents if a.workspace_id == conversation.workspace_id}
        if conversation.agent_id not in self._agents:
            raise NotFound("agent")
        self.primary = self._agents[conversation.agent_id]
        self.team = tuple(self._agents.values())
        self._lock = anyio.Lock()
        # Unbounded by count but not by size: each entry is one coroutine awaiting its
        # commit, and the conversation's inbox, instructions and runners are bounded.
        self._queued: list[_Queued] = []
        # Whether the group being stored is a background one (see _commit_queued).
        self._storing_background = False
        self.patient_scope: str | None = None
        """The one patient this conversation may be about (agents.ownership): that of the
        last patient who spoke in it (staff speaking do not widen it), or of the caller
        on the line once verified (:data:`~agents.ownership.NOBODY` until then);
        ``None``: staff's."""
        self.callers = CallerDesk(conversation.id)
        self._tasks: dict[str, Task] = {t.id: t for t in tasks}
        self._runners: dict[str, TaskRunner] = {}
        self._batches: dict[str, list[str]] = {}
        self._children: dict[str, list[str]] = {}
        for task in self._tasks.values():
            if task.batch_id is not None and not task.followed_up:
                self._batches.setdefault(task.batch_id, []).append(task.id)
            if task.parent_id is not None:
                self._children.setdefault(task.parent_id, []).append(task.id)
        self._interrupted_here: set[str] = set()
        self._fence = None if fence is None else Fence(conversation.id, fence)
        self.fenced = False
        """Set once the store refused a commit: another node is the home now."""
        self._primary_agent = PrimaryAgent(self)
        # Work that ended while no one was home to follow it up (a kill between the
        # last task's end and its roll-up): the follow-up comes now, once per batch.
        for task in self._tasks.values():
            if (
                task.depth == 1
                and task.state.is_terminal
                and task.state is not TaskState.INTERRUPTED
                and not task.followed_up
            ):
                self._primary_agent.queue_news(task.id, {})
        # Nothing runs yet: every ended task's sub-tasks have been read by it already.
        for task in list(self._tasks.values()):
            if task.state.is_terminal:
                self._forget_children(task.id)
        self._forget_settled()
        self._tg: TaskGroup | None = None
        # The runners whose latest progress waits to be sent, oldest first, and the
        # flusher's wake-up while it waits for one (see progress_pending).
        self._progress_due: dict[str, TaskRunner] = {}
        self._progress_ready: anyio.Event | None = None
        self._attached = 0
        self._idle_since: float | None = None
        self._idle_changed = anyio.Event()
        self._stopped = anyio.Event()
        self.stopping = False

    # -- life ------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped (idle, or the node's group is cancelled).

        This is the conversation's fault boundary: an unexpected exception from
        anything it runs stops this conversation alone — its running tasks end
        ``interrupted`` after clean-up, the person is told, and the error's type (never
        its text) is logged with the conversation's id. It never leaves this method.
        """
        fault = False
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._primary_agent.run, tg)
                tg.start_soon(self._watch_idle)
                tg.start_soon(self._flush_progress)
                task_status.started()
        except* Exception as group:
            fault = True
            log.error(
                "conversation failed unexpectedly",
                extra={"conversation_id": self.conversation.id, "error": first_type(group)},
            )
        finally:
            self.stopping = True
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(self.settings.cleanup_deadline),
            ):
                await self._announce_interruptions(fault=fault)
            self._stopped.set()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` has returned: the conversation is no longer live here."""
        await self._stopped.wait()

    async def _announce_interruptions(self, *, fault: bool = False) -> None:
        """Tell the person which of their tasks this stop interrupted (a ``notice``).

        After a fault the person is told even if no task was running: their last turn
        may have gone unanswered.
        """
        interrupted = [
            t
            for t in self._tasks.values()
            if t.state is TaskState.INTERRUPTED and t.id in self._interrupted_here
        ]
        if self.fenced or (not interrupted and not fault):
            return
        notice = fault_notice(len(interrupted)) if fault else interruption_notice(len(interrupted))
        try:
            await self.commit(Changes(events=[NewEvent(self.conversation.chat_id, notice)]))
        except SwitchboardError:
            log.error("could not store a notice", extra={"conversation_id": self.conversation.id})

    def stop(self) -> None:
        """Stop the conversation; running tasks end ``interrupted`` after clean-up."""
        self.stopping = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def attach(self, sockets: int = 1) -> None:
        """*sockets* more sockets are attached: stay in memory."""
        self._attached += sockets
        if self._attached:
            self._busy()

    def detach(self) -> None:
        self._attached -= 1
        self.note_activity()

    @property
    def live_tasks(self) -> int:
        return len(self._runners)

    def statistics(self) -> dict[str, int]:
        return {
            "attached": self._attached,
            "live_tasks": len(self._runners),
            "known_tasks": len(self._tasks),
            "batches": len(self._batches),
            "inbox": self._primary_agent.inbox_length,
        }

    def note_activity(self) -> None:
        """Something that kept the conversation busy may have ended: is it idle now?"""
        if self._attached == 0 and not self._runners and not self._primary_agent.inbox_length:
            if self._idle_since is None:
                self._idle_since = anyio.current_time()
                self._idle_changed.set()
        else:
            self._busy()

    def _busy(self) -> None:
        if self._idle_since is not None:
            self._idle_since = None
            self._idle_changed.set()

    async def _watch_idle(self) -> None:
        # Sleeps until the conversation turns idle, then for the grace period unless it
        # turns busy again: no polling, however many conversations a node holds.
        self.note_activity()
        grace = self.settings.idle_grace
        while True:
            idle_since = self._idle_since
            if idle_since is not None and anyio.current_time() - idle_since >= grace:
                self.stop()
                return
            with anyio.move_on_after(
                float("inf") if idle_since is None else idle_since + grace - anyio.current_time()
            ):
                await self._idle_changed.wait()
            self._idle_changed = anyio.Event()

    # -- the person's side -----------------------------------------------------------

    async def say(self, principal: Principal, text: str) -> StreamEvent:
        """Store the person's message and queue it for the primary agent.

        Returns the stored message (its ``seq`` is the ack's). Raises
        :class:`RateLimited` when too many turns are already waiting.
        """
        if self._primary_agent.queued_turns >= self.settings.inbox_size:
            raise RateLimited("too many turns waiting")
        if principal.patient_id is not None:
            self.patient_scope = principal.patient_id
        author = Author(principal.person_id or principal.id, principal.name or "You")
        message = Message(MessageRole.USER, author, MessageKind.REPLY, text)
        (event,) = await self.commit(Changes(events=[NewEvent(self.conversation.chat_id, message)]))
        self._primary_agent.queue_turn(text, principal)
        self._busy()
        return event

    @property
    def answering(self) -> bool:
        """Whether a turn of the person's is waiting for, or getting, its reply."""
        return self._primary_agent.answering

    def interrupt_turn(self) -> bool:
        """Barge-in: abandon the reply being produced, if any. Background work goes on."""
        return self._primary_agent.interrupt_turn()

    def visible_tasks(self, principal: Principal) -> list[Task]:
        """The tasks this runtime holds (see :data:`RECENT_TASKS`) that *principal* may
        see, oldest first."""
        return [t for t in self._tasks.values() if may_access_task(principal, t)]

    def task_record(self, task_id: str) -> Task:
        """The record of a task that is not settled (raises ``KeyError`` for others)."""
        return self._tasks[task_id]

    def work_ended(self, task_id: str) -> bool:
        """Whether *task_id*'s runner has ended and told its news (its terminal state is
        stored first, possibly in a commit shared with its siblings, before that)."""
        task = self._tasks.get(task_id)
        return task is None or (task.state.is_terminal and task_id not in self._runners)

    def known_task(self, task_id: str) -> Task | None:
        """The record of *task_id* if this runtime still holds it (see :data:`RECENT_TASKS`)."""
        return self._tasks.get(task_id)

    async def _stored_task(self, principal: Principal, task_id: str) -> Task | None:
        """A settled task of this conversation, from the store, if *principal* may see it."""
        task = await self.services.store.get_task(self.conversation.workspace_id, task_id)
        if (
            task is None
            or task.conversation_id != self.conversation.id
            or not may_access_task(principal, task)
        ):
            return None
        return task

    def find_task(self, principal: Principal, task_id: str) -> Task | None:
        """The task if it exists here and *principal* may see it, else ``None``."""
        task = self._tasks.get(task_id)
        if task is None or not may_access_task(principal, task):
            return None
        return task

    async def instruct(
        self, principal: Principal, task_id: str, text: str, *, channel: str = "agent:instruct"
    ) -> StreamEvent:
        """Queue new instructions for a running task; the caller must own it.

        Raises :class:`NotFound`, :class:`Conflict` (terminal task) or
        :class:`RateLimited` (too many instructions queued).
        """
        task = self.find_task(principal, task_id)
        if task is None:
            if await self._stored_task(principal, task_id) is not None:
                raise Conflict("the task has already ended")  # and settled
            raise NotFound("task")
        runner = self._runners.get(task_id)
        if runner is None or task.state.is_terminal or task.state is TaskState.CANCELLING:
            raise Conflict("the task has already ended")
        runner.queue_instruction(text)
        author = Author(principal.person_id or principal.id, principal.name or principal.id)
        role = MessageRole.AGENT if principal.role is Role.AGENT else MessageRole.USER
        message = Message(role, author, MessageKind.REPLY, text, task_id=task_id)
        received = _step_event(
            task.chat_id,
            task.agent,
            Step(StepAction.INSTRUCTION_RECEIVED),
            task_id,
        )
        event, _ = await self.commit(Changes(events=[NewEvent(task.chat_id, message), received]))
        await self._audit_best_effort(AuditType.TASK_INSTRUCTED, principal, [task], channel)
        return event

    async def cancel(
        self,
        principal: Principal,
        task_id: str,
        reason: str | None = None,
        *,
        channel: str = "agent:cancel",
    ) -> Task:
        """Cancel a task and everything it started; idempotent.

        Returns the task as it is once the cancel is accepted: ``cancelling``, or its
        terminal state if it had already ended (the first terminal state wins).
        """
        task = self.find_task(principal, task_id)
        if task is None:
            settled = await self._stored_task(principal, task_id)
            if settled is None:
                raise NotFound("task")
            return settled
        runner = self._runners.get(task_id)
        if runner is None or task.state.is_terminal or task.state is TaskState.CANCELLING:
            return task
        subtree = [r for r in runner.subtree() if not r.cancel_requested]
        for r in subtree:
            r.cancel_requested = True
        now = utcnow()
        updated = [
            replace(self._tasks[r.id], state=TaskState.CANCELLING, updated_at=now)
            for r in subtree
            if can_move(self._tasks[r.id].state, TaskState.CANCELLING)
        ]
        # Who asked, and why, goes in the sub-agent's own chat (a record its owners read).
        who = principal.name or principal.person_id or principal.id
        said = f"Cancel requested by {who}" + (f": {reason}" if reason else ".")
        role = MessageRole.AGENT if principal.role is Role.AGENT else MessageRole.USER
        author = Author(principal.person_id or principal.id, who)
        note = NewEvent(task.chat_id, Message(role, author, MessageKind.REPLY, said, task_id))
        await self._store_tasks(updated, [note])
        await self._audit_best_effort(AuditType.TASK_CANCELLED, principal, [task], channel)
        assert self._tg is not None
        self._tg.start_soon(self._cancel_tree, runner)
        return self._tasks[task_id]

    async def _cancel_tree(self, runner: TaskRunner) -> None:
        """Cancel *runner*'s children (deepest first), then *runner*; wait for all."""
        async with anyio.create_task_group() as tg:
            for child in list(runner.children.values()):
                tg.start_soon(self._cancel_tree, child)
        runner.scope.cancel()
        await runner.done.wait()

    # -- storing and announcing ------------------------------------------------------

    async def _store_commit(self, changes: Changes) -> list[StreamEvent]:
        """Store *changes* under this home's fence; a refusal stops the conversation here.

        Raises :class:`Fenced` (nothing stored) when another node has taken the
        conversation over: its new home runs it, this copy must not go on.
        """
        try:
            # Not dataclasses.replace, which inspects the fields on every call.
            fenced = Changes(
                chats=changes.chats,
                tasks=changes.tasks,
                events=changes.events,
                fence=self._fence,
                background=changes.background,
            )
            return await self.services.store.commit(fenced)
        except Fenced:
            if not self.fenced:
                self.fenced = True
                log.warning(
                    "conversation taken over", extra={"conversation_id": self.conversation.id}
                )
                self.stop()
            raise

    async def commit(self, changes: Changes) -> list[StreamEvent]:
        """Store *changes*, then publish their events, in ``seq`` order.

        Raises what the store raises (:class:`Unavailable`, :class:`Fenced`): then
        nothing of it was stored.
        """
        return await self._commit_queued(lambda records: changes)

    async def _commit_queued(
        self,
        build: Callable[[Records], Changes | None],
        then: Callable[[list[StreamEvent]], None] | None = None,
        *,
        background: bool = False,
    ) -> list[StreamEvent]:
        """Take a place in the queue of commits; return once it is stored and published.

        *background*: what *build* makes is a background commit (Changes.background).
        """
        queued = _Queued(build, then, background)
        self._queued.append(queued)
        if self._storing_background and not background:
            # The group being stored is one the store may hold back: this one waits on it.
            self.services.store.hurry(self.conversation.id)
        try:
            async with self._lock:
                if not queued.taken:
                    await self._commit_group()
        except BaseException:
            # Cancelled while waiting for the lock: it leaves the queue unstored.
            if not queued.taken:
                self._queued.remove(queued)
            raise
        if queued.error is not None:
            raise queued.error
        return queued.stored

    async def _commit_group(self) -> None:
        """Store every queued commit in one transaction, then publish it in one call.

        Called under the lock. The store round trip is shielded: the commits of others
        are in it, and the store bounds its own waits.
        """
        group, self._queued = self._queued, []
        records: Records = {}
        built: list[tuple[_Queued, Changes]] = []
        for queued in group:
            queued.taken = True
            changes = queued.build(records)
            if changes is not None:
                built.append((queued, changes))
        if not built:
            return
        if len(built) == 1:
            merged = built[0][1]
        else:
            tasks: dict[str, Task] = {}
            for _, changes in built:
                # One row per task in a transaction: the last change of it is the record.
                tasks.update((t.id, t) for t in changes.tasks)
            merged = Changes(
                chats=[c for _, changes in built for c in changes.chats],
                tasks=list(tasks.values()),
                events=[e for _, changes in built for e in changes.events],
                background=all(changes.background for _, changes in built),
            )
        with anyio.CancelScope(shield=True):
            self._storing_background = merged.background
            try:
                stored = await self._store_commit(merged)
            except SwitchboardError as exc:
                for queued, _ in built:
                    queued.error = exc
                return
            finally:
                self._storing_background = False
            for task in merged.tasks:
                self._tasks[task.id] = task
            at = 0
            for queued, changes in built:
                queued.stored = stored[at : at + len(changes.events)]
                at += len(changes.events)
                if queued.then is not None:
                    queued.then(queued.stored)
            await self._publish(stored)

    def _record(self, records: Records, task_id: str) -> Task:
        """A task's record as the commits queued before this one leave it."""
        return records.get(task_id) or self._tasks[task_id]

    async def _publish(self, events: list[StreamEvent]) -> None:
        try:
            await self.services.publisher.publish(self.conversation.workspace_id, events)
        except Exception as exc:
            # Stored is what counts: listeners fill the gap from the store.
            log.warning(
                "publish failed",
                extra={"conversation_id": self.conversation.id, "error": type(exc).__name__},
            )

    async def post(
        self,
        chat_id: str,
        agent: AgentDefinition,
        text: str,
        *,
        kind: MessageKind = MessageKind.REPLY,
        task_id: str | None = None,
        message_id: str | None = None,
        call: str | None = None,
    ) -> StreamEvent:
        """Store and announce an agent's message in *chat_id* (under *message_id*, the
        id its previews carried, if it was streamed), said in phone call *call*."""
        message = Message(MessageRole.AGENT, agent.author, kind, text, task_id=task_id, call=call)
        if message_id is not None:
            message = replace(message, message_id=message_id)
        (event,) = await self.commit(Changes(events=[NewEvent(chat_id, message)]))
        return event

    async def post_steps(
        self,
        chat_id: str,
        agent: AgentDefinition,
        steps: Sequence[Step],
        *,
        task_id: str,
        then: str | None = None,
    ) -> list[StreamEvent]:
        """Store and announce *steps* of a sub-agent's work in its chat, and *then* its
        words (a ``reply``), in one commit."""
        events = [_step_event(chat_id, agent.author, step, task_id) for step in steps]
        if then is not None:
            said = Message(MessageRole.AGENT, agent.author, MessageKind.REPLY, then, task_id)
            events.append(NewEvent(chat_id, said))
        return await self.commit(Changes(events=events))

    async def preview(self, chat_id: str, message_id: str, piece: str) -> None:
        """Show *chat_id*'s watchers the next piece of message *message_id* (not stored)."""
        event = StreamEvent(chat_id, 0, utcnow(), MessageDelta(message_id, piece))
        await self._publish([event])

    async def post_followup(
        self, text: str, task_ids: Sequence[str], *, task_id: str | None, call: str | None = None
    ) -> StreamEvent:
        """Store the primary agent's follow-up about *task_ids*, marking them followed up.

        One commit: a kill can never leave the follow-up stored and the tasks unmarked
        (announced twice) or the tasks marked and the follow-up lost.
        """
        message = Message(
            MessageRole.AGENT,
            self.primary.author,
            MessageKind.FOLLOWUP,
            text,
            task_id=task_id,
            call=call,
        )

        def build(records: Records) -> Changes:
            updated = [replace(self._record(records, i), followed_up=True) for i in task_ids]
            records.update((t.id, t) for t in updated)
            return Changes(tasks=updated, events=[NewEvent(self.conversation.chat_id, message)])

        (event,) = await self._commit_queued(build)
        for task_id in task_ids:
            batch_id = self._tasks[task_id].batch_id
            if batch_id is not None:
                self._batches.pop(batch_id, None)
        self._forget_settled()
        return event

    async def update_task(
        self,
        task_id: str,
        *,
        state: TaskState | None = None,
        progress: str | None = None,
        result: str | None = None,
        messages: Sequence[NewEvent] = (),
    ) -> Task:
        """Move a task through the state machine and announce it in both its chats.

        A move the state machine forbids (anything after a terminal state) is ignored:
        the first terminal state wins. Returns the task as stored.
        """
        outcome: list[Task] = []

        def build(records: Records) -> Changes | None:
            current = self._record(records, task_id)
            if current.state.is_terminal or (
                state is not None
                and state is not current.state
                and not can_move(current.state, state)
            ):
                outcome.append(current)
                return None
            updated = replace(
                current,
                state=state or current.state,
                progress=progress if progress is not None else current.progress,
                result=result if result is not None else current.result,
                updated_at=utcnow(),
            )
            records[task_id] = updated
            outcome.append(updated)
            return Changes(tasks=[updated], events=[*self._task_events(updated), *messages])

        await self._commit_queued(build)
        return outcome[0]

    async def _store_tasks(self, tasks: Sequence[Task], extra: Sequence[NewEvent] = ()) -> None:
        def build(records: Records) -> Changes:
            # A copy made before its turn came (a cancel's "cancelling") must never
            # overwrite a terminal state stored meanwhile: the first terminal state wins.
            current = []
            for t in tasks:
                known = records.get(t.id) or self._tasks.get(t.id)
                if known is not None and known.state.is_terminal:
                    continue
                if known is not None and known.updated_at > t.updated_at:
                    # Stored meanwhile (a sub-agent's "working"): the copy's change is
                    # made to the task as it is now, so that nothing goes back in time.
                    if not can_move(known.state, t.state):
                        continue
                    t = replace(known, state=t.state, updated_at=utcnow())
                current.append(t)
            records.update((t.id, t) for t in current)
            events = [e for t in current for e in self._task_events(t)]
            return Changes(tasks=current, events=[*events, *extra])

        await self._commit_queued(build)

    def _task_events(self, task: Task) -> list[NewEvent]:
        # Every task shows in the conversation's stream (the person sees all of them)
        # and in its own chat (whoever watches the sub-agent).
        body = TaskUpdate(task)
        return [NewEvent(self.conversation.chat_id, body), NewEvent(task.chat_id, body)]

    def progress_pending(self, runner: TaskRunner) -> None:
        """*runner* has progress to send: the flusher sends it with the others'."""
        self._progress_due[runner.id] = runner
        ready = self._progress_ready
        if ready is not None:
            self._progress_ready = None
            ready.set()

    async def _flush_progress(self) -> None:
        """Send the tasks' latest progress, all of it in one commit, at most once an
        interval: no task's reaches the stream more often (PROTOCOL.md), and the
        latest is never lost (a task's terminal state carries what is still due)."""
        interval = self.settings.progress_interval
        while True:
            if not self._progress_due:
                while not self._progress_due:
                    self._progress_ready = ready = anyio.Event()
                    await ready.wait()
                # Woken from rest: at a moment of its own within the interval, so that
                # conversations whose tasks started together do not flush together.
                await anyio.sleep(random.uniform(0, interval))
            due, self._progress_due = self._progress_due, {}
            reports = [(r, text) for r in due.values() if (text := r.take_progress())]
            if reports:
                try:
                    await self.report_progress([(r.id, text) for r, text in reports])
                except Fenced:
                    return  # the conversation stops here: its new home goes on
                except Exception as exc:
                    # Not stored (the store is away; a bug): kept for the next flush,
                    # unless newer progress came meanwhile. It fails no task.
                    log.warning(
                        "progress not stored",
                        extra={
                            "conversation_id": self.conversation.id,
                            "error": type(exc).__name__,
                        },
                    )
                    for runner, text in reports:
                        runner.keep_progress(text)
            await anyio.sleep(interval)

    async def report_progress(self, reports: Sequence[tuple[str, str]]) -> None:
        """Announce tasks' progress, (task id, text) each, in one commit; a depth-1
        task's is also told to the person. Tasks that ended meanwhile are left as
        they are."""

        def build(records: Records) -> Changes | None:
            tasks: list[Task] = []
            events: list[NewEvent] = []
            for task_id, text in reports:
                current = records.get(task_id) or self._tasks.get(task_id)
                if current is None or current.state.is_terminal:
                    continue
                updated = replace(current, progress=text, updated_at=utcnow())
                records[task_id] = updated
                tasks.append(updated)
                events.extend(self._task_events(updated))
                said = (
                    self.brain_for(self.primary).progress_text(updated, text)
                    if updated.depth == 1
                    else ""
                )
                if said:
                    events.append(
                        NewEvent(
                            self.conversation.chat_id,
                            Message(
                                MessageRole.AGENT,
                                self.primary.author,
                                MessageKind.PROGRESS,
                                said,
                                task_id=updated.id,
                                call=updated.params.get("call"),
                            ),
                        )
                    )
            return Changes(tasks=tasks, events=events, background=True) if tasks else None

        await self._commit_queued(build, background=True)

    # -- delegation ------------------------------------------------------------------

    @property
    def agent_principal(self) -> Principal:
        """The primary agent as a principal: the owner of the depth-1 tasks."""
        return Principal(
            self.conversation.workspace_id, self.primary.id, Role.AGENT, self.primary.name
        )

    def use_kit(self, kit: WorkspaceKit) -> None:
        """Run from now on with *kit*'s agents, tools and brains (a workspace re-applied).

        Work already running keeps the tool it is calling; the next step, turn or
        delegation sees the new definitions. A primary agent that the workspace no
        longer has keeps its last definition, so the conversation can go on.
        """
        if kit.workspace_id != self.conversation.workspace_id:
            raise ValueError("a kit of another workspace")
        agents = {a.id: a for a in kit.agents}
        self.primary = agents.setdefault(self.conversation.agent_id, self.primary)
        self._agents = agents
        self.team = tuple(agents.values())
        self.toolbox = kit.toolbox
        self._brains = kit.brains
        self._kit_revision = kit.revision

    def tool_infos(self) -> tuple[ToolInfo, ...]:
        """The tools the team uses, as a brain may see them (cached per kit)."""
        cached = self._tool_infos
        if cached is None or cached[0] is not self.toolbox:
            used = {name for agent in self.team for name in agent.tools}
            infos = tuple(
                ToolInfo(t.name, t.description, t.parameters, t.expected_latency)
                for t in self.toolbox
                if t.name in used
            )
            cached = self._tool_infos = (self.toolbox, infos)
        return cached[1]

    async def refresh_workspace(self) -> None:
        """Take the workspace's current kit if it changed since the last one taken."""
        source = self.services.workspaces
        if source is None:
            return
        kit = await source.kit(self.conversation.workspace_id)
        if kit is not None and kit.revision != self._kit_revision:
            self.use_kit(kit)

    def brain_for(self, agent: AgentDefinition) -> Brain:
        brain = self._brains.get(agent.brain)
        if brain is None:
            raise SwitchboardError(f"agent {agent.id} has no brain")
        return brain

    async def start_tasks(
        self,
        *,
        owner: AgentDefinition,
        parent: TaskRunner | None,
        assignments: Sequence[Assignment],
        rollup: bool,
        tg: TaskGroup,
        announce: str = "",
        announce_id: str | None = None,
    ) -> list[TaskRunner]:
        """Start one background task per assignment, stored in a single commit.

        *announce*, if given, is the owner's message saying so: stored in the same
        commit, right after the tasks' ``submitted`` events, in the owner's chat (under
        *announce_id* if it was streamed).

        Raises :class:`DepthLimitExceeded` past the depth cap, and :class:`NotFound`
        for an agent that is not one of this workspace's or a patient outside
        :attr:`patient_scope`.
        """
        depth = 1 if parent is None else parent.depth + 1
        if depth > self.settings.depth_cap:
            raise DepthLimitExceeded(f"delegation is capped at depth {self.settings.depth_cap}")
        agents = []
        for assignment in assignments:
            # Work about a patient the conversation may not see is not started: to its
            # brain that patient does not exist.
            if not may_call_about(self.patient_scope, assignment.args):
                raise NotFound("patient")
            agent = self._agents.get(assignment.agent_id)
            if agent is None:
                raise NotFound("agent")
            agents.append(agent)
        batch_id = new_id("batch") if rollup and len(assignments) > 1 else None
        now = utcnow()
        # The call the work was asked for in: its news is for that call's caller alone.
        call = self.callers.call if parent is None else parent.task.params.get("call")
        tasks: list[Task] = []
        chats: list[Chat] = []
        firsts: list[NewEvent] = []
        for index, (assignment, agent) in enumerate(zip(assignments, agents, strict=True)):
            # A microsecond apart, so that every listing keeps the assignments' order.
            created = now + timedelta(microseconds=index)
            task_id = new_id("task")
            chat_id = new_id("chat")
            task = Task(
                id=task_id,
                workspace_id=self.conversation.workspace_id,
                conversation_id=self.conversation.id,
                chat_id=chat_id,
                title=assignment.title,
                agent=agent.author,
                state=TaskState.SUBMITTED,
                depth=depth,
                parent_id=None if parent is None else parent.id,
                owner_agent_id=owner.id,
                person_id=self.conversation.person_id,
                created_at=created,
                updated_at=created,
                batch_id=batch_id,
                node_id=self.settings.node_id,
                subject=assignment.subject,
                params={
                    "tool": assignment.tool,
                    "args": dict(assignment.args),
                    "instructions": assignment.instructions,
                    **({} if call is None else {"call": call}),
                },
            )
            tasks.append(task)
            chats.append(
                Chat(
                    id=chat_id,
                    workspace_id=task.workspace_id,
                    conversation_id=self.conversation.id,
                    kind=ChatKind.TASK,
                    title=assignment.title,
                    agent=agent.author,
                    person_id=self.conversation.person_id,
                    created_at=created,
                    task_id=task_id,
                )
            )
            # The sub-agent's chat opens with what it was asked to do, and by whom.
            firsts.append(
                NewEvent(
                    chat_id,
                    Message(
                        MessageRole.USER,
                        owner.author,
                        MessageKind.REPLY,
                        assignment.instructions,
                        task_id=task_id,
                    ),
                )
            )
        events = [e for t in tasks for e in self._task_events(t)]
        if announce:
            chat_id = (
                self.conversation.chat_id if parent is None else self._tasks[parent.id].chat_id
            )
            about = tasks[0].id if len(tasks) == 1 else None
            said = Message(
                MessageRole.AGENT, owner.author, MessageKind.REPLY, announce, about, call=call
            )
            if announce_id is not None:
                said = replace(said, message_id=announce_id)
            events.append(NewEvent(chat_id, said))
        runners: list[TaskRunner] = []

        def started(stored: list[StreamEvent]) -> None:
            # Before the group is published: a cancel seen after the announcement finds
            # every runner in the tree.
            for task, agent in zip(tasks, agents, strict=True):
                runner = TaskRunner(self, task, agent, parent)
                self._runners[task.id] = runner
                if parent is not None:
                    parent.children[task.id] = runner
                runners.append(runner)
            if batch_id is not None:
                self._batches[batch_id] = [t.id for t in tasks]
            if parent is not None:
                self._children.setdefault(parent.id, []).extend(t.id for t in tasks)

        changes = Changes(chats=chats, tasks=tasks, events=[*events, *firsts])
        await self._commit_queued(lambda records: changes, started)
        self._busy()
        for runner in runners:
            tg.start_soon(runner.run)
        actor = Principal(self.conversation.workspace_id, owner.id, Role.AGENT, owner.name)
        await self._audit_best_effort(AuditType.TASK_STARTED, actor, tasks, "agent:delegate")
        return runners

    def task_ended(self, runner: TaskRunner) -> None:
        """Called by a runner once its terminal state is stored."""
        self._runners.pop(runner.id, None)
        task = self._tasks[runner.id]
        took = (task.updated_at - task.created_at).total_seconds()
        self.services.observer.task_ended(task.agent.id, task.state.value, max(took, 0.0))
        if self._tasks[runner.id].state is TaskState.INTERRUPTED and runner.parent is None:
            self._interrupted_here.add(runner.id)
        if runner.parent is None:
            # Busy again: note_activity below finds the news in the inbox.
            self._primary_agent.queue_news(runner.id, runner.data)
        else:
            runner.parent.children.pop(runner.id, None)
        # Its sub-tasks ended before it, and it has read their results.
        self._forget_children(runner.id)
        self.note_activity()

    def _forget_children(self, task_id: str) -> None:
        """Let the records of *task_id*'s ended sub-tasks, and theirs, leave memory."""
        for child_id in self._children.pop(task_id, ()):
            if child_id in self._runners:
                continue  # not ended: never forgotten (a parent ends after its children)
            self._forget_children(child_id)
            self._tasks.pop(child_id, None)

    def _forget_settled(self) -> None:
        """Keep only the :data:`RECENT_TASKS` newest settled depth-1 tasks in memory."""
        settled = [
            t
            for t in self._tasks.values()
            if t.depth == 1
            and (t.followed_up or t.state is TaskState.INTERRUPTED)
            and t.id not in self._runners
            and t.id not in self._interrupted_here
        ]
        if len(settled) <= RECENT_TASKS:
            return
        settled.sort(key=lambda t: t.created_at)
        for task in settled[: len(settled) - RECENT_TASKS]:
            self._forget_children(task.id)
            del self._tasks[task.id]

    def batch_members(self, task: Task) -> list[str]:
        """The ids of the tasks started with *task* for one roll-up; just its own if none."""
        return self._batches.get(task.batch_id or "", [task.id])

    # -- audited reads and the audit trail ------------------------------------------

    async def read_child_result(self, reader: Principal, runner: TaskRunner) -> Task:
        """An agent reads a task it started: an audited read, refused if not audited."""
        return await self.read_task(reader, runner.id, "agent:child_result")

    async def read_task(self, reader: Principal, task_id: str, channel: str) -> Task:
        """An agent reads a task, audited on behalf of the conversation's person.

        Raises :class:`Unavailable` if the audit record cannot be written: then the
        read must not happen (fail closed).
        """
        task = self._tasks[task_id]
        await self.services.audit.record(
            AuditEntry(
                type=AuditType.PHI_RECORD_VIEWED,
                actor=reader,
                channel=channel,
                task_id=task.id,
                chat_id=task.chat_id,
                conversation_id=task.conversation_id,
                on_behalf_of=(self.conversation.person_id,),
            )
        )
        return task

    async def _audit_best_effort(
        self, kind: AuditType, actor: Principal, tasks: Sequence[Task], channel: str
    ) -> None:
        """Record *kind* of each of *tasks*, in one write."""
        try:
            await self.services.audit.record_many(
                [
                    AuditEntry(
                        type=kind,
                        actor=actor,
                        channel=channel,
                        reason=AuditReason.OWNER,
                        task_id=task.id,
                        chat_id=task.chat_id,
                        conversation_id=task.conversation_id,
                        on_behalf_of=(self.conversation.person_id,),
                    )
                    for task in tasks
                ]
            )
        except Unavailable:
            # Task events are recorded for the trail's completeness, but a write that
            # reveals nothing must not stop the work; reads fail closed instead.
            log.warning(
                "audit write failed",
                extra={
                    "conversation_id": self.conversation.id,
                    "task_id": tasks[0].id if len(tasks) == 1 else None,
                    "count": len(tasks),
                    "type": kind.value,
                },
            )


def fault_notice(interrupted: int) -> Message:
    """The ``notice`` after a fault stopped the conversation (never says what the fault was)."""
    if interrupted:
        noun = "task was" if interrupted == 1 else "tasks were"
        text = (
            f"Something went wrong on our side: {interrupted} background {noun} "
            "interrupted. Ask again to start over."
        )
    else:
        text = "Something went wrong on our side. If I didn't answer, please say that again."
    return Message(MessageRole.AGENT, SERVER_AUTHOR, MessageKind.NOTICE, text)


def _step_event(chat_id: str, author: Author, step: Step, task_id: str) -> NewEvent:
    """A ``step`` message of a sub-agent's chat; its text is the step's summary."""
    message = Message(
        MessageRole.AGENT, author, MessageKind.STEP, step.summary(), task_id=task_id, step=step
    )
    return NewEvent(chat_id, message)

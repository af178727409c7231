"""A live conversation: the primary agent's loop and the background tasks it owns.

One task group per conversation (the per-conversation nursery) holds the primary
agent loop and every depth-1 task's scope. The primary agent takes its inbox — user
turns and task news — one item at a time, and never waits on slow work: delegated
work runs in its own scope and reports back through the inbox.

Every change is stored, then published, under one lock per conversation
(:meth:`ConversationRuntime.commit`), so that live events reach listeners in ``seq``
order and a task's record never goes backwards.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import anyio
from anyio.abc import TaskGroup, TaskStatus

from agents.brains import (
    Action,
    Assignment,
    Brain,
    Cancel,
    CheckStatus,
    Delegate,
    Instruct,
    Outcome,
    Reply,
    TaskSummary,
    Turn,
    UseTool,
)
from agents.exceptions import (
    Conflict,
    DepthLimitExceeded,
    NotFound,
    RateLimited,
    SwitchboardError,
    Unavailable,
)
from agents.models import (
    AgentDefinition,
    Author,
    Chat,
    ChatKind,
    Conversation,
    Message,
    MessageKind,
    MessageRole,
    Principal,
    Role,
    StreamEvent,
    Task,
    TaskState,
    TaskUpdate,
    interruption_notice,
    new_id,
    utcnow,
)
from agents.ownership import may_access_task
from agents.ports import (
    AuditEntry,
    AuditReason,
    AuditSink,
    AuditType,
    Changes,
    NewEvent,
    Publisher,
    Store,
)
from agents.settings import RuntimeSettings
from agents.states import can_move
from agents.tasks import TaskRunner
from agents.tools import ToolBox, ToolContext

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """What a conversation needs from the node: the ports, the tools and the brains."""

    store: Store
    publisher: Publisher
    audit: AuditSink
    toolbox: ToolBox
    brains: Mapping[str, Brain]
    settings: RuntimeSettings


@dataclass(frozen=True, slots=True)
class _UserTurn:
    text: str


@dataclass(frozen=True, slots=True)
class _TaskNews:
    task_id: str


class ConversationRuntime:
    """The runtime of one conversation; start it with ``await tg.start(rt.run)``."""

    def __init__(
        self,
        conversation: Conversation,
        agents: Sequence[AgentDefinition],
        services: Services,
        tasks: Sequence[Task] = (),
    ) -> None:
        self.conversation = conversation
        self.services = services
        self.settings = services.settings
        self.toolbox = services.toolbox
        self._agents = {a.id: a for a in agents if a.workspace_id == conversation.workspace_id}
        if conversation.agent_id not in self._agents:
            raise NotFound("agent")
        self.primary = self._agents[conversation.agent_id]
        self.team = tuple(self._agents.values())
        self._lock = anyio.Lock()
        self._tasks: dict[str, Task] = {t.id: t for t in tasks}
        self._runners: dict[str, TaskRunner] = {}
        self._batches: dict[str, list[str]] = {}
        self._announced: set[str] = set()
        # What finished depth-1 sub-agents left for the follow-up; taken once by it.
        self._finished_data: dict[str, Mapping[str, object]] = {}
        self._interrupted_here: set[str] = set()
        # The inbox. User turns are bounded by inbox_size (say() refuses beyond it);
        # task news is bounded by the number of tasks, each sending news once.
        self._inbox: deque[_UserTurn | _TaskNews] = deque()
        self._queued_turns = 0
        self._inbox_ready = anyio.Event()
        self._tg: TaskGroup | None = None
        self._turn_scope: anyio.CancelScope | None = None
        self._answering = False
        self._attached = 0
        self._idle_since: float | None = None
        self._idle_changed = anyio.Event()
        self.stopping = False

    # -- life ------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped (idle, or the node's group is cancelled)."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._primary_loop)
                tg.start_soon(self._watch_idle)
                task_status.started()
        finally:
            self.stopping = True
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(self.settings.cleanup_deadline),
            ):
                await self._announce_interruptions()

    async def _announce_interruptions(self) -> None:
        """Tell the person which of their tasks this stop interrupted (a ``notice``)."""
        interrupted = [
            t
            for t in self._tasks.values()
            if t.state is TaskState.INTERRUPTED and t.id in self._interrupted_here
        ]
        if not interrupted:
            return
        notice = interruption_notice(len(interrupted))
        try:
            await self.commit(Changes(events=[NewEvent(self.conversation.chat_id, notice)]))
        except SwitchboardError:
            log.error("could not store a notice", extra={"conversation_id": self.conversation.id})

    def stop(self) -> None:
        """Stop the conversation; running tasks end ``interrupted`` after clean-up."""
        self.stopping = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def attach(self) -> None:
        """A socket is attached: stay in memory."""
        self._attached += 1
        self._busy()

    def detach(self) -> None:
        self._attached -= 1
        self._note_activity()

    @property
    def live_tasks(self) -> int:
        return len(self._runners)

    def statistics(self) -> dict[str, int]:
        return {
            "attached": self._attached,
            "live_tasks": len(self._runners),
            "known_tasks": len(self._tasks),
            "inbox": len(self._inbox),
        }

    def _note_activity(self) -> None:
        if self._attached == 0 and not self._runners and not self._inbox:
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
        self._note_activity()
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
        if self._queued_turns >= self.settings.inbox_size:
            raise RateLimited("too many turns waiting")
        author = Author(principal.person_id or principal.id, principal.name or "You")
        message = Message(MessageRole.USER, author, MessageKind.REPLY, text)
        (event,) = await self.commit(Changes(events=[NewEvent(self.conversation.chat_id, message)]))
        self._queued_turns += 1
        self._put(_UserTurn(text))
        return event

    @property
    def answering(self) -> bool:
        """Whether a turn of the person's is waiting for, or getting, its reply."""
        return self._answering or self._queued_turns > 0

    def interrupt_turn(self) -> bool:
        """Barge-in: abandon the reply being produced, if any. Background work goes on."""
        scope = self._turn_scope
        if scope is None:
            return False
        scope.cancel()
        return True

    def visible_tasks(self, principal: Principal) -> list[Task]:
        """The tasks of this conversation *principal* may see, oldest first."""
        return [t for t in self._tasks.values() if may_access_task(principal, t)]

    def task_record(self, task_id: str) -> Task:
        return self._tasks[task_id]

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
            raise NotFound("task")
        runner = self._runners.get(task_id)
        if runner is None or task.state.is_terminal or task.state is TaskState.CANCELLING:
            raise Conflict("the task has already ended")
        runner.queue_instruction(text)
        author = Author(principal.person_id or principal.id, principal.name or principal.id)
        role = MessageRole.AGENT if principal.role is Role.AGENT else MessageRole.USER
        message = Message(role, author, MessageKind.REPLY, text, task_id=task_id)
        (event,) = await self.commit(Changes(events=[NewEvent(task.chat_id, message)]))
        await self._audit_best_effort(AuditType.TASK_INSTRUCTED, principal, task, channel)
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
            raise NotFound("task")
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
        await self._store_tasks(updated)
        await self._audit_best_effort(AuditType.TASK_CANCELLED, principal, task, channel)
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

    async def commit(self, changes: Changes) -> list[StreamEvent]:
        """Store *changes*, then publish their events, in ``seq`` order."""
        async with self._lock:
            events = await self.services.store.commit(changes)
            await self._publish(events)
        return events

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
    ) -> StreamEvent:
        """Store and announce an agent's message in *chat_id*."""
        message = Message(MessageRole.AGENT, agent.author, kind, text, task_id=task_id)
        (event,) = await self.commit(Changes(events=[NewEvent(chat_id, message)]))
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
        async with self._lock:
            current = self._tasks[task_id]
            if current.state.is_terminal:
                return current
            if (
                state is not None
                and state is not current.state
                and not can_move(current.state, state)
            ):
                return current
            updated = replace(
                current,
                state=state or current.state,
                progress=progress if progress is not None else current.progress,
                result=result if result is not None else current.result,
                updated_at=utcnow(),
            )
            events = await self.services.store.commit(
                Changes(tasks=[updated], events=[*self._task_events(updated), *messages])
            )
            self._tasks[task_id] = updated
            await self._publish(events)
        return updated

    async def _store_tasks(self, tasks: Sequence[Task], extra: Sequence[NewEvent] = ()) -> None:
        async with self._lock:
            events = [e for t in tasks for e in self._task_events(t)]
            stored = await self.services.store.commit(
                Changes(tasks=list(tasks), events=[*events, *extra])
            )
            for task in tasks:
                self._tasks[task.id] = task
            await self._publish(stored)

    def _task_events(self, task: Task) -> list[NewEvent]:
        # Every task shows in the conversation's stream (the person sees all of them)
        # and in its own chat (whoever watches the sub-agent).
        body = TaskUpdate(task)
        return [NewEvent(self.conversation.chat_id, body), NewEvent(task.chat_id, body)]

    async def report_progress(self, runner: TaskRunner, text: str) -> None:
        """Announce a task's progress; a depth-1 task's is also told to the person."""
        messages: list[NewEvent] = []
        task = self._tasks[runner.id]
        if task.depth == 1 and not task.state.is_terminal:
            said = self.brain_for(self.primary).progress_text(task, text)
            if said:
                messages.append(
                    NewEvent(
                        self.conversation.chat_id,
                        Message(
                            MessageRole.AGENT,
                            self.primary.author,
                            MessageKind.PROGRESS,
                            said,
                            task_id=task.id,
                        ),
                    )
                )
        await self.update_task(runner.id, progress=text, messages=messages)

    # -- delegation ------------------------------------------------------------------

    def brain_for(self, agent: AgentDefinition) -> Brain:
        brain = self.services.brains.get(agent.brain)
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
    ) -> list[TaskRunner]:
        """Start one background task per assignment, stored in a single commit.

        *announce*, if given, is the owner's message saying so: stored in the same
        commit, right after the tasks' ``submitted`` events, in the owner's chat.

        Raises :class:`DepthLimitExceeded` past the depth cap, and :class:`NotFound`
        for an agent that is not one of this workspace's.
        """
        depth = 1 if parent is None else parent.depth + 1
        if depth > self.settings.depth_cap:
            raise DepthLimitExceeded(f"delegation is capped at depth {self.settings.depth_cap}")
        agents = []
        for assignment in assignments:
            agent = self._agents.get(assignment.agent_id)
            if agent is None:
                raise NotFound("agent")
            agents.append(agent)
        batch_id = new_id("batch") if rollup and len(assignments) > 1 else None
        now = utcnow()
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
            events.append(
                NewEvent(
                    chat_id,
                    Message(MessageRole.AGENT, owner.author, MessageKind.REPLY, announce, about),
                )
            )
        async with self._lock:
            stored = await self.services.store.commit(
                Changes(chats=chats, tasks=tasks, events=[*events, *firsts])
            )
            runners = []
            for task, agent in zip(tasks, agents, strict=True):
                self._tasks[task.id] = task
                runner = TaskRunner(self, task, agent, parent)
                self._runners[task.id] = runner
                if parent is not None:
                    parent.children[task.id] = runner
                runners.append(runner)
            if batch_id is not None:
                self._batches[batch_id] = [t.id for t in tasks]
            await self._publish(stored)
        self._busy()
        for runner in runners:
            tg.start_soon(runner.run)
        for task in tasks:
            actor = Principal(task.workspace_id, owner.id, Role.AGENT, owner.name)
            await self._audit_best_effort(AuditType.TASK_STARTED, actor, task, "agent:delegate")
        return runners

    def task_ended(self, runner: TaskRunner) -> None:
        """Called by a runner once its terminal state is stored."""
        self._runners.pop(runner.id, None)
        if self._tasks[runner.id].state is TaskState.INTERRUPTED and runner.parent is None:
            self._interrupted_here.add(runner.id)
        if runner.parent is None:
            self._finished_data[runner.id] = runner.data
            self._put(_TaskNews(runner.id))
        else:
            runner.parent.children.pop(runner.id, None)
        self._note_activity()

    async def read_child_result(self, reader: Principal, runner: TaskRunner) -> Task:
        """An agent reads a task it started: an audited read, refused if not audited."""
        task = self._tasks[runner.id]
        await self._agent_read(reader, task, "agent:child_result")
        return task

    async def _agent_read(self, reader: Principal, task: Task, channel: str) -> None:
        """Audit an agent's read of *task*, on behalf of the conversation's person.

        Raises :class:`Unavailable` if it cannot be written: then the read must not
        happen (fail closed).
        """
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

    async def _audit_best_effort(
        self, kind: AuditType, actor: Principal, task: Task, channel: str
    ) -> None:
        try:
            await self.services.audit.record(
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
            )
        except Unavailable:
            # Task events are recorded for the trail's completeness, but a write that
            # reveals nothing must not stop the work; reads fail closed instead.
            log.warning("audit write failed", extra={"task_id": task.id, "type": kind.value})

    # -- the primary agent -----------------------------------------------------------

    def _put(self, item: _UserTurn | _TaskNews) -> None:
        self._inbox.append(item)
        self._busy()
        self._inbox_ready.set()

    async def _primary_loop(self) -> None:
        while True:
            while not self._inbox:
                await self._inbox_ready.wait()
                self._inbox_ready = anyio.Event()
            item = self._inbox.popleft()
            try:
                if isinstance(item, _UserTurn):
                    self._answering = True
                    self._queued_turns -= 1
                    await self._answer(item.text)
                else:
                    await self._on_task_news(item.task_id)
            except SwitchboardError as exc:
                log.warning(
                    "turn failed",
                    extra={"conversation_id": self.conversation.id, "error": exc.code},
                )
                await self._say_safely(
                    "Sorry — I couldn't do that just now. Please try again in a moment.",
                    MessageKind.NOTICE,
                )
            finally:
                self._answering = False
                self._note_activity()

    @property
    def agent_principal(self) -> Principal:
        return Principal(
            self.conversation.workspace_id, self.primary.id, Role.AGENT, self.primary.name
        )

    def _summaries(self) -> tuple[TaskSummary, ...]:
        mine = [
            t for t in self._tasks.values() if t.owner_agent_id == self.primary.id and t.depth == 1
        ]
        mine.sort(key=lambda t: t.created_at, reverse=True)
        return tuple(
            TaskSummary(t.id, t.title, t.subject, t.agent.id, t.state.is_terminal) for t in mine
        )

    async def _answer(self, text: str) -> None:
        brain = self.brain_for(self.primary)
        inline: tuple[UseTool, str] | None = None
        with anyio.CancelScope() as scope:
            self._turn_scope = scope
            try:
                action: Action = await brain.respond(
                    Turn(text, self.primary, self.team, self._summaries())
                )
                if isinstance(action, UseTool) and not self._is_slow(action.tool):
                    inline = (action, await self._run_inline(brain, action))
            finally:
                self._turn_scope = None
        if scope.cancelled_caught:
            return  # barge-in: this reply is abandoned, never sent
        if inline is not None:
            await self._say(inline[1], MessageKind.REPLY)
            return
        await self._act(brain, action)

    def _is_slow(self, tool_name: str) -> bool:
        tool = self.toolbox.get(tool_name)
        return tool is not None and tool.expected_latency > self.settings.turn_budget

    async def _run_inline(self, brain: Brain, action: UseTool) -> str:
        tool = self.toolbox.get(action.tool)
        if tool is None or action.tool not in self.primary.tools:
            return "I can't do that myself, and none of our agents can either."
        ctx = ToolContext(self.conversation.workspace_id, None, lambda _text: None)
        try:
            result = await tool.run(ctx, action.args)
        except Exception as exc:
            log.info("inline tool failed", extra={"tool": tool.name, "error": type(exc).__name__})
            return "Sorry — I couldn't get that information just now."
        return brain.tool_text(action.tool, result)

    async def _act(self, brain: Brain, action: Action) -> None:
        if isinstance(action, Reply):
            await self._say(action.text, MessageKind.REPLY)
        elif isinstance(action, UseTool):
            await self._delegate_tool(action)
        elif isinstance(action, Delegate):
            await self._delegate(action.text, action.assignments, rollup=action.rollup)
        elif isinstance(action, CheckStatus):
            await self._check_status(brain, action.task_ids)
        elif isinstance(action, Instruct):
            await self._instruct(brain, action)
        else:
            assert isinstance(action, Cancel)
            await self._cancel(brain, action.task_ids)

    async def _delegate(
        self, text: str, assignments: Sequence[Assignment], *, rollup: bool
    ) -> None:
        if not assignments:
            await self._say(text, MessageKind.REPLY)
            return
        assert self._tg is not None
        try:
            await self.start_tasks(
                owner=self.primary,
                parent=None,
                assignments=assignments,
                rollup=rollup,
                tg=self._tg,
                announce=text,
            )
        except NotFound:
            await self._say("I don't have an agent in this workspace for that.", MessageKind.REPLY)

    async def _delegate_tool(self, action: UseTool) -> None:
        helper = next(
            (a for a in self.team if action.tool in a.tools and a.id != self.primary.id), None
        )
        if helper is None:
            await self._say("None of our agents can do that, I'm afraid.", MessageKind.REPLY)
            return
        assignment = Assignment(
            agent_id=helper.id,
            title=action.title,
            subject=action.subject,
            instructions=f"Use {action.tool} for: {action.title}",
            tool=action.tool,
            args=action.args,
        )
        await self._delegate(
            "That takes a while — I'm working on it in the background and I'll get back to you.",
            [assignment],
            rollup=False,
        )

    def _own(self, task_ids: Sequence[str]) -> list[Task]:
        """The agent's own tasks among *task_ids* (all of them if empty)."""
        agent = self.agent_principal
        if not task_ids:
            return [t for t in self.visible_tasks(agent) if t.depth == 1]
        found = [self.find_task(agent, task_id) for task_id in task_ids]
        return [t for t in found if t is not None]

    async def _check_status(self, brain: Brain, task_ids: Sequence[str]) -> None:
        tasks = self._own(task_ids)
        try:
            for task in tasks:
                await self._agent_read(self.agent_principal, task, "agent:status")
        except Unavailable:
            await self._say(
                "I can't check on that right now — please ask again in a moment.", MessageKind.REPLY
            )
            return
        current = [self._tasks[t.id] for t in tasks]
        await self._say(
            brain.status_text(current),
            MessageKind.REPLY,
            task_id=current[0].id if len(current) == 1 else None,
        )

    async def _instruct(self, brain: Brain, action: Instruct) -> None:
        try:
            await self.instruct(self.agent_principal, action.task_id, action.text)
        except NotFound:
            await self._say("I can't find that background task.", MessageKind.REPLY)
            return
        except Conflict:
            await self._say("That background task has already finished.", MessageKind.REPLY)
            return
        await self._say(
            brain.instruct_text(self._tasks[action.task_id]),
            MessageKind.REPLY,
            task_id=action.task_id,
        )

    async def _cancel(self, brain: Brain, task_ids: Sequence[str]) -> None:
        tasks = self._own(task_ids)
        for task in tasks:
            await self.cancel(self.agent_principal, task.id, None)
        current = [self._tasks[t.id] for t in tasks]
        await self._say(
            brain.cancel_text(current),
            MessageKind.REPLY,
            task_id=current[0].id if len(current) == 1 else None,
        )

    async def _on_task_news(self, task_id: str) -> None:
        task = self._tasks[task_id]
        if task.state is TaskState.INTERRUPTED:
            return
        members = self._batches.get(task.batch_id or "", [task_id])
        if any(not self._tasks[m].state.is_terminal for m in members):
            return  # the roll-up comes with the last of the batch
        key = task.batch_id or task_id
        if key in self._announced:
            return
        self._announced.add(key)
        brain = self.brain_for(self.primary)
        outcomes = []
        try:
            for member in members:
                runner_data = self._finished_data.pop(member, {})
                read = await self._read_own_result(member)
                outcomes.append(Outcome(read, runner_data))
        except Unavailable:
            await self._say(
                "Some background work has finished, but I can't read its result right now.",
                MessageKind.NOTICE,
            )
            return
        text = brain.followup_text(outcomes, rollup=task.batch_id is not None)
        await self._say(text, MessageKind.FOLLOWUP, task_id=None if task.batch_id else task_id)

    async def _read_own_result(self, task_id: str) -> Task:
        task = self._tasks[task_id]
        await self._agent_read(self.agent_principal, task, "agent:child_result")
        return task

    async def _say(self, text: str, kind: MessageKind, *, task_id: str | None = None) -> None:
        await self.post(self.conversation.chat_id, self.primary, text, kind=kind, task_id=task_id)

    async def _say_safely(self, text: str, kind: MessageKind) -> None:
        try:
            await self._say(text, kind)
        except SwitchboardError:
            log.error("could not store a notice", extra={"conversation_id": self.conversation.id})

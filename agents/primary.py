"""The primary agent: the one the person talks to, answering from its inbox.

The :class:`~agents.conversation.ConversationRuntime` owns one :class:`PrimaryAgent`
and starts its loop in the conversation's task group. The inbox holds the person's
turns (queued by :meth:`ConversationRuntime.say` once stored) and task news (queued
when a depth-1 task has ended). The agent takes one item at a time: it answers a turn
with its brain and acts on the result, and turns task news into follow-ups.

Invariants:

* The agent never waits on slow work: a tool whose expected latency exceeds the turn
  budget, and any delegated work, runs as a background task and reports back through
  the inbox.
* ``_turn_scope`` is set only while a reply is being produced, so a barge-in abandons
  that reply and nothing else; an abandoned reply is never sent.
* Each finished task, or each batch, is followed up at most once (``_announced`` until
  the follow-up is stored, then the tasks' ``followed_up``, stored with it): a batch's
  roll-up comes with the last of its members to end.
* Everything the agent says goes through the runtime, stored then announced.
* A phone caller who is not verified (:mod:`agents.callers`) gets only replies and
  verification from their turns: any other action is held, whatever the brain chose;
  the brain is shown no transcript or task from another call, nor any task outside the
  conversation's patient scope.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from opentelemetry import context as otel_context
from opentelemetry import trace

from agents.brains import (
    Action,
    Assignment,
    Brain,
    CallerStatus,
    Cancel,
    CheckStatus,
    Delegate,
    Instruct,
    Outcome,
    Reply,
    TaskSummary,
    TranscriptLine,
    Turn,
    UseTool,
    VerifyCaller,
    VerifyFirst,
)
from agents.callers import (
    ASK_TO_VERIFY,
    COULD_NOT_CHECK,
    LOCKED_OUT,
    outcome_text,
    verified_text,
)
from agents.exceptions import Conflict, NotFound, SwitchboardError, Unavailable, first_type
from agents.models import MessageKind, MessageRole, Principal, Task, TaskState, new_id
from agents.ownership import NO_SUCH_PATIENT, may_call_about, task_in_scope
from agents.spans import start_span
from agents.tools import ToolContext
from agents.verification import VerificationOutcome

if TYPE_CHECKING:
    from agents.conversation import ConversationRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _UserTurn:
    text: str
    speaker: Principal | None = None
    """Who said it; a caller's turns (``speaker.call``) are answered in their call."""
    queued: float = field(default_factory=time.perf_counter)
    """When the person's words, already stored, were queued for an answer."""
    trace: otel_context.Context = field(default_factory=otel_context.get_current)
    """The trace the words came in on (the say, or the relay of it)."""


_tracer = trace.get_tracer("switchboard.agents")

TURN_FAILED = "Sorry — I couldn't do that just now. Please try again in a moment."
"""What the person is told when a turn fails, whatever the reason (never the reason)."""

TRANSCRIPT_LENGTH = 40
"""How many recent messages a brain is shown with each turn."""


@dataclass(frozen=True, slots=True)
class _TaskNews:
    task_id: str


class _ReplyPreview:
    """A turn's :class:`~agents.brains.Preview`: each piece goes out as a delta at once."""

    def __init__(self, runtime: ConversationRuntime) -> None:
        self._runtime = runtime
        self.message_id = new_id("msg")
        self._pieces: list[str] = []

    @property
    def said(self) -> str:
        """What the person has been shown so far."""
        return "".join(self._pieces)

    async def write(self, piece: str) -> None:
        if not piece:
            return
        self._pieces.append(piece)
        await self._runtime.preview(self._runtime.conversation.chat_id, self.message_id, piece)


class PrimaryAgent:
    """The conversation's primary agent; its loop runs in the conversation's group."""

    def __init__(self, runtime: ConversationRuntime) -> None:
        self.runtime = runtime
        # The inbox. User turns are bounded by inbox_size (the runtime's say() refuses
        # beyond it); task news is bounded by the number of tasks, each sending news once.
        self._inbox: deque[_UserTurn | _TaskNews] = deque()
        self._queued_turns = 0
        self._inbox_ready = anyio.Event()
        # What finished depth-1 sub-agents left for the follow-up; taken once by it.
        self._finished_data: dict[str, Mapping[str, object]] = {}
        self._announced: set[str] = set()
        self._turn_scope: anyio.CancelScope | None = None
        self._preview: _ReplyPreview | None = None
        # What the brain is shown of the conversation: bounded, oldest dropped first.
        self._transcript: deque[TranscriptLine] = deque(maxlen=TRANSCRIPT_LENGTH)
        self._answering = False
        self._tg: TaskGroup | None = None
        # The call whose turn is being answered: what is said now is said in it.
        self._call: str | None = None

    # -- the inbox -------------------------------------------------------------------

    def queue_turn(self, text: str, speaker: Principal | None = None) -> None:
        """Queue the person's turn, already stored, for an answer."""
        self._queued_turns += 1
        self._put(_UserTurn(text, speaker))

    def queue_news(self, task_id: str, data: Mapping[str, object]) -> None:
        """Queue the news that depth-1 task *task_id* has ended, with what it left."""
        self._finished_data[task_id] = data
        self._put(_TaskNews(task_id))

    def _put(self, item: _UserTurn | _TaskNews) -> None:
        self._inbox.append(item)
        self._inbox_ready.set()

    @property
    def queued_turns(self) -> int:
        """How many of the person's turns wait in the inbox."""
        return self._queued_turns

    @property
    def inbox_length(self) -> int:
        return len(self._inbox)

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

    # -- the loop --------------------------------------------------------------------

    async def run(self, tg: TaskGroup) -> None:
        """Take the inbox one item at a time, forever; delegate into *tg*.

        *tg* is the conversation's task group, which owns every depth-1 task.
        """
        self._tg = tg
        while True:
            while not self._inbox:
                await self._inbox_ready.wait()
                self._inbox_ready = anyio.Event()
            item = self._inbox.popleft()
            try:
                await self._take(item)
            finally:
                self._answering = False
                self.runtime.note_activity()

    async def _take(self, item: _UserTurn | _TaskNews) -> None:
        """Answer one inbox item; a failure fails this turn alone (the person is told)."""
        conversation_id = self.runtime.conversation.id
        try:
            if isinstance(item, _UserTurn):
                self._answering = True
                self._queued_turns -= 1
                with start_span(
                    _tracer,
                    "switchboard.turn",
                    context=item.trace,
                    attributes={"switchboard.conversation": conversation_id},
                    record_exception=False,
                    set_status_on_exception=False,
                ):
                    await self._answer(item.text, item.speaker)
                observer = self.runtime.services.observer
                observer.turn_answered(time.perf_counter() - item.queued)
            else:
                await self._on_task_news(item.task_id)
        except* SwitchboardError as group:
            log.warning(
                "turn failed",
                extra={"conversation_id": conversation_id, "error": _first_code(group)},
            )
            await self._end_preview()
            await self._say_safely(TURN_FAILED, MessageKind.NOTICE)
        except* Exception as group:
            # A bug (a brain raising KeyError, a task group's ExceptionGroup): this turn
            # fails and the conversation goes on. Only ids and the type reach the log,
            # never the exception's text, which may quote a record.
            log.error(
                "turn failed unexpectedly",
                extra={"conversation_id": conversation_id, "error": first_type(group)},
            )
            await self._end_preview()
            await self._say_safely(TURN_FAILED, MessageKind.NOTICE)
        finally:
            self._preview = None

    # -- answering a turn ------------------------------------------------------------

    def _own_tasks(self) -> list[Task]:
        """The depth-1 tasks the agent started, oldest first."""
        runtime = self.runtime
        agent, scope = runtime.agent_principal, runtime.patient_scope
        return [t for t in runtime.visible_tasks(agent) if t.depth == 1 and task_in_scope(scope, t)]

    def _summaries(self) -> tuple[TaskSummary, ...]:
        mine = sorted(self._own_tasks(), key=lambda t: t.created_at, reverse=True)
        return tuple(
            TaskSummary(
                t.id, t.title, t.subject, t.agent.id, t.state.is_terminal, t.state, t.progress
            )
            for t in mine
        )

    def _enter_call(self, speaker: Principal | None) -> CallerStatus | None:
        """Answer in *speaker*'s call (if a caller's): its own transcript and scope."""
        runtime = self.runtime
        call = None if speaker is None else speaker.call
        if call is not None and call != self._call:
            # Another call is another caller: nothing said in an earlier one is theirs.
            self._transcript.clear()
        self._call = call
        verification = runtime.callers.enter(call)
        if verification is None:
            return None
        runtime.patient_scope = verification.scope
        return CallerStatus(
            verification.patient_id is not None,
            max(verification.max_attempts - verification.attempts, 0),
        )

    async def _answer(self, text: str, speaker: Principal | None = None) -> None:
        runtime = self.runtime
        inline: tuple[UseTool, str] | None = None
        caller = self._enter_call(speaker)
        self._transcript.append(TranscriptLine(MessageRole.USER, MessageKind.REPLY, text))
        preview = self._preview = _ReplyPreview(runtime)
        with anyio.CancelScope() as scope:
            self._turn_scope = scope
            try:
                # A workspace applied again since the last turn applies from this one.
                # Inside the turn's scope: a barge-in meanwhile abandons the turn too.
                await runtime.refresh_workspace()
                brain = runtime.brain_for(runtime.primary)
                action: Action = await brain.respond(
                    Turn(
                        text,
                        runtime.primary,
                        runtime.team,
                        self._summaries(),
                        conversation_id=runtime.conversation.id,
                        transcript=tuple(self._transcript),
                        tools=runtime.tool_infos(),
                        preview=preview,
                        patient_scope=runtime.patient_scope,
                        caller=caller,
                    )
                )
                if (
                    caller is not None
                    and not caller.verified
                    and not isinstance(action, Reply | VerifyCaller)
                ):
                    # Whatever the brain chose: nothing about anyone before verification.
                    action = VerifyFirst()
                if isinstance(action, UseTool) and not self._is_slow(action.tool):
                    inline = (action, await self._run_inline(brain, action))
            finally:
                self._turn_scope = None
        if scope.cancelled_caught:
            # Barge-in: this reply is abandoned, never sent — but what the person was
            # already shown of it is stored as said, so no delta is left without its
            # message.
            await self._end_preview()
            return
        if inline is not None:
            await self._end_preview()
            await self._say(inline[1], MessageKind.REPLY)
            return
        if not isinstance(action, Reply | Delegate):
            await self._end_preview()
        if isinstance(action, VerifyFirst | VerifyCaller):
            await self._verify(action, text, speaker)
            return
        await self._act(brain, action)

    def _is_slow(self, tool_name: str) -> bool:
        tool = self.runtime.toolbox.get(tool_name)
        return tool is not None and tool.expected_latency > self.runtime.settings.turn_budget

    async def _run_inline(self, brain: Brain, action: UseTool) -> str:
        runtime = self.runtime
        tool = runtime.toolbox.get(action.tool)
        if tool is None or action.tool not in runtime.primary.tools:
            return "I can't do that myself, and none of our agents can either."
        scope = runtime.patient_scope
        if not may_call_about(scope, action.args):
            return NO_SUCH_PATIENT
        ctx = ToolContext(runtime.conversation.workspace_id, None, lambda _text: None, scope)
        try:
            result = await tool.run(ctx, action.args)
        except Exception as exc:
            log.info("inline tool failed", extra={"tool": tool.name, "error": type(exc).__name__})
            return "Sorry — I couldn't get that information just now."
        return brain.tool_text(action.tool, result)

    # -- verifying a caller ----------------------------------------------------------

    async def _verify(
        self, action: VerifyFirst | VerifyCaller, text: str, speaker: Principal | None
    ) -> None:
        runtime, callers = self.runtime, self.runtime.callers
        verification = callers.current
        if verification is None or speaker is None:
            # Not a caller's turn: there is no one to verify, and nothing to hold.
            await self._say("I'm not sure what you mean.", MessageKind.REPLY)
            return
        if verification.patient_id is not None:
            await self._say("You're already verified on this call.", MessageKind.REPLY)
            return
        if isinstance(action, VerifyFirst):
            if verification.locked:
                await self._say(LOCKED_OUT, MessageKind.REPLY)
                return
            callers.hold(text)
            await self._say(ASK_TO_VERIFY, MessageKind.REPLY)
            return
        try:
            result, name = await callers.verify(
                speaker,
                runtime.services.directory,
                runtime.services.audit,
                name=action.name,
                date_of_birth=action.date_of_birth,
            )
        except Unavailable:
            await self._say(COULD_NOT_CHECK, MessageKind.REPLY)
            return
        if result.outcome is not VerificationOutcome.VERIFIED:
            await self._say(outcome_text(result), MessageKind.REPLY)
            return
        runtime.patient_scope = verification.scope
        await self._say(verified_text(name or action.name), MessageKind.REPLY)
        held = callers.take_held()
        if held is not None:
            # The request verification held back, taken up now (already stored: not
            # said again, only answered).
            self._queued_turns += 1
            self._inbox.appendleft(_UserTurn(held, speaker))
            self._inbox_ready.set()

    # -- acting on an action ---------------------------------------------------------

    async def _end_preview(self) -> None:
        """Store what the person was shown of a reply that will not be finished."""
        preview, self._preview = self._preview, None
        if preview is None or not preview.said:
            return
        with anyio.CancelScope(shield=True):
            await self._say_safely(preview.said, MessageKind.REPLY, message_id=preview.message_id)

    def _streamed_id(self) -> str | None:
        """The id the reply's deltas carried, if any went out (taken once)."""
        preview, self._preview = self._preview, None
        return preview.message_id if preview is not None and preview.said else None

    async def _act(self, brain: Brain, action: Action) -> None:
        if isinstance(action, Reply):
            await self._say(action.text, MessageKind.REPLY, message_id=self._streamed_id())
        elif isinstance(action, UseTool):
            await self._delegate_tool(action)
        elif isinstance(action, Delegate):
            await self._delegate(
                action.text,
                action.assignments,
                rollup=action.rollup,
                message_id=self._streamed_id(),
            )
        elif isinstance(action, CheckStatus):
            await self._check_status(brain, action.task_ids)
        elif isinstance(action, Instruct):
            await self._instruct(brain, action)
        else:
            assert isinstance(action, Cancel)
            await self._cancel(brain, action.task_ids)

    async def _delegate(
        self,
        text: str,
        assignments: Sequence[Assignment],
        *,
        rollup: bool,
        message_id: str | None = None,
    ) -> None:
        if not assignments:
            await self._say(text, MessageKind.REPLY, message_id=message_id)
            return
        assert self._tg is not None
        if not all(may_call_about(self.runtime.patient_scope, a.args) for a in assignments):
            # As for a patient who does not exist: nothing is started, nothing announced.
            await self._say(NO_SUCH_PATIENT, MessageKind.REPLY, message_id=message_id)
            return
        try:
            await self.runtime.start_tasks(
                owner=self.runtime.primary,
                parent=None,
                assignments=assignments,
                rollup=rollup,
                tg=self._tg,
                announce=text,
                announce_id=message_id,
            )
        except NotFound:
            if message_id is not None:
                await self._say(text, MessageKind.REPLY, message_id=message_id)
            await self._say("I don't have an agent in this workspace for that.", MessageKind.REPLY)

    async def _delegate_tool(self, action: UseTool) -> None:
        primary_id = self.runtime.primary.id
        helper = next(
            (a for a in self.runtime.team if action.tool in a.tools and a.id != primary_id), None
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
        """The agent's own tasks among *task_ids* (all of its depth-1 tasks if empty)."""
        if not task_ids:
            return self._own_tasks()
        runtime = self.runtime
        agent, scope = runtime.agent_principal, runtime.patient_scope
        found = [runtime.find_task(agent, task_id) for task_id in task_ids]
        return [t for t in found if t is not None and task_in_scope(scope, t)]

    async def _check_status(self, brain: Brain, task_ids: Sequence[str]) -> None:
        runtime = self.runtime
        tasks = self._own(task_ids)
        try:
            for task in tasks:
                await runtime.read_task(runtime.agent_principal, task.id, "agent:status")
        except Unavailable:
            await self._say(
                "I can't check on that right now — please ask again in a moment.", MessageKind.REPLY
            )
            return
        current = [runtime.task_record(t.id) for t in tasks]
        await self._say(
            brain.status_text(current),
            MessageKind.REPLY,
            task_id=current[0].id if len(current) == 1 else None,
        )

    async def _instruct(self, brain: Brain, action: Instruct) -> None:
        try:
            await self.runtime.instruct(self.runtime.agent_principal, action.task_id, action.text)
        except NotFound:
            await self._say("I can't find that background task.", MessageKind.REPLY)
            return
        except Conflict:
            await self._say("That background task has already finished.", MessageKind.REPLY)
            return
        await self._say(
            brain.instruct_text(self.runtime.task_record(action.task_id)),
            MessageKind.REPLY,
            task_id=action.task_id,
        )

    async def _cancel(self, brain: Brain, task_ids: Sequence[str]) -> None:
        tasks = self._own(task_ids)
        for task in tasks:
            await self.runtime.cancel(self.runtime.agent_principal, task.id, None)
        current = [self.runtime.task_record(t.id) for t in tasks]
        await self._say(
            brain.cancel_text(current),
            MessageKind.REPLY,
            task_id=current[0].id if len(current) == 1 else None,
        )

    # -- task news -------------------------------------------------------------------

    async def _on_task_news(self, task_id: str) -> None:
        runtime = self.runtime
        task = runtime.known_task(task_id)
        if task is None or task.followed_up or task.state is TaskState.INTERRUPTED:
            return  # told already (news may come twice: at load, and as the task ends)
        members = runtime.batch_members(task)
        if any(not runtime.work_ended(m) for m in members):
            return  # the roll-up comes with the last of the batch
        key = task.batch_id or task_id
        if key in self._announced:
            return
        self._announced.add(key)
        brain = runtime.brain_for(runtime.primary)
        outcomes = []
        try:
            for member in members:
                if runtime.known_task(member) is None:
                    continue  # settled without a follow-up (interrupted before a restart)
                runner_data = self._finished_data.pop(member, {})
                read = await runtime.read_task(
                    runtime.agent_principal, member, "agent:child_result"
                )
                outcomes.append(Outcome(read, runner_data))
        except Unavailable:
            await self._say(
                "Some background work has finished, but I can't read its result right now.",
                MessageKind.NOTICE,
            )
            return
        text = brain.followup_text(outcomes, rollup=task.batch_id is not None)
        about = None if task.batch_id else task_id
        call = task.params.get("call")
        await runtime.post_followup(text, members, task_id=about, call=call)
        # Marked followed up in the same commit: from now on that is what says so.
        self._announced.discard(key)
        if call == self._call:
            # News of another call's work is no part of what this call's brain is shown.
            self._transcript.append(
                TranscriptLine(MessageRole.AGENT, MessageKind.FOLLOWUP, text, about)
            )

    # -- saying ----------------------------------------------------------------------

    async def _say(
        self,
        text: str,
        kind: MessageKind,
        *,
        task_id: str | None = None,
        message_id: str | None = None,
    ) -> None:
        runtime = self.runtime
        await runtime.post(
            runtime.conversation.chat_id,
            runtime.primary,
            text,
            kind=kind,
            task_id=task_id,
            message_id=message_id,
            call=self._call,
        )
        self._transcript.append(TranscriptLine(MessageRole.AGENT, kind, text, task_id))

    async def _say_safely(
        self, text: str, kind: MessageKind, *, message_id: str | None = None
    ) -> None:
        try:
            await self._say(text, kind, message_id=message_id)
        except SwitchboardError:
            log.error(
                "could not store a notice", extra={"conversation_id": self.runtime.conversation.id}
            )


def _first_code(group: BaseExceptionGroup[SwitchboardError]) -> str:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc.code if isinstance(exc, SwitchboardError) else "internal"

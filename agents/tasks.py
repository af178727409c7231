"""A background task: one sub-agent's loop inside its own cancel scope.

``TaskRunner.run`` is started in the task group of whoever owns the task — the
conversation for depth 1, the parent task for deeper ones — so cancelling a scope
takes everything below it along, and nothing outlives its owner.

Invariants:

* A runner stores exactly one terminal state, in :meth:`TaskRunner._finish`, which
  always runs (shielded, under the clean-up deadline) however the loop ended.
* ``done`` is set only after that terminal state is stored and announced.
* Clean-ups run only for tool calls that started and did not return: a call that
  returned has nothing left to undo.
* Instructions are taken as they arrive: while a tool call or a delegation is in
  flight they are handed to the tool (its ``amend``, where it has one) and
  acknowledged in the sub-agent's chat at once; otherwise the next step takes them.
  Either way each instruction is new to the brain exactly once. ``_step_lock`` keeps
  the brain from being asked two things about one task at the same time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from opentelemetry import trace

from agents.brains import (
    CallTool,
    Delegate,
    Finish,
    Note,
    Outcome,
    StepRecord,
    ToolInfo,
    Work,
)
from agents.exceptions import (
    Conflict,
    DepthLimitExceeded,
    Fenced,
    RateLimited,
    SwitchboardError,
    ToolError,
)
from agents.models import (
    AgentDefinition,
    MessageKind,
    Principal,
    Role,
    Step,
    StepAction,
    StepOutcome,
    Task,
    TaskState,
)
from agents.ownership import NO_SUCH_PATIENT, may_call_about
from agents.spans import start_span
from agents.tools import Tool, ToolContext, ToolResult

if TYPE_CHECKING:
    from agents.conversation import ConversationRuntime

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("switchboard.agents")

MAX_STEPS = 64
"""A sub-agent that has not finished after this many steps fails: no endless loops."""


def _failed(tool: str, reason: str) -> Step:
    return Step(StepAction.TOOL_RETURNED, tool=tool, outcome=StepOutcome.FAILED, reason=reason)


def _refused(tool: str, error: str | None) -> Step:
    """A call the runtime did not make: a tool the agent lacks, or a patient out of scope
    (which is answered as one that does not exist)."""
    reason = "not_found" if error == NO_SUCH_PATIENT else "no_such_tool"
    return Step(StepAction.TOOL_REFUSED, tool=tool, outcome=StepOutcome.FAILED, reason=reason)


class _ToolFailed(Exception):
    """A tool raised; its message is safe to show and store as the task's result."""


@dataclass(frozen=True, slots=True)
class _StartedCall:
    tool: Tool
    args: Mapping[str, Any]
    ctx: ToolContext


class TaskRunner:
    """Runs one task's sub-agent and owns its scope, its instructions and its children."""

    def __init__(
        self,
        runtime: ConversationRuntime,
        task: Task,
        agent: AgentDefinition,
        parent: TaskRunner | None,
    ) -> None:
        self.runtime = runtime
        self.id = task.id
        self.agent = agent
        self.parent = parent
        self.depth = task.depth
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.children: dict[str, TaskRunner] = {}
        self.data: Mapping[str, Any] = {}
        self.cancel_requested = False
        self._tg: TaskGroup | None = None
        # Instructions wait here until the sub-agent's next step. Bounded: when full,
        # instruct() refuses with rate_limited rather than dropping or blocking.
        self._instructions_send, self._instructions_receive = anyio.create_memory_object_stream[
            str
        ](runtime.settings.instruction_queue_size)
        self._pending_progress: str | None = None
        self._started: list[_StartedCall] = []
        self._step_lock = anyio.Lock()
        self._history: list[StepRecord] = []
        self._instructions: list[str] = []
        self._unacknowledged: list[str] = []
        self._in_flight: _StartedCall | None = None
        self._delegating = False

    @property
    def task(self) -> Task:
        return self.runtime.task_record(self.id)

    @property
    def principal(self) -> Principal:
        """The sub-agent as a principal: the owner of the tasks it starts."""
        return Principal(
            workspace_id=self.runtime.conversation.workspace_id,
            id=self.agent.id,
            role=Role.AGENT,
            name=self.agent.name,
        )

    def subtree(self) -> list[TaskRunner]:
        """This runner and every runner below it, parents before children."""
        found = [self]
        for child in self.children.values():
            found.extend(child.subtree())
        return found

    def queue_instruction(self, text: str) -> None:
        """Queue *text* for the next step; raises :class:`RateLimited` when the queue is full."""
        try:
            self._instructions_send.send_nowait(text)
        except anyio.WouldBlock:
            raise RateLimited("too many pending instructions") from None
        except anyio.ClosedResourceError:
            raise Conflict("the task has already ended") from None

    def report_progress(self, text: str) -> None:
        """Remember the latest progress; the conversation sends it at most once an
        interval (:meth:`ConversationRuntime.progress_pending`)."""
        first = self._pending_progress is None
        self._pending_progress = text
        if first and not self.done.is_set():
            self.runtime.progress_pending(self)

    def take_progress(self) -> str | None:
        """The latest progress not yet sent, and none from now on until the next."""
        text, self._pending_progress = self._pending_progress, None
        return text

    def keep_progress(self, text: str) -> None:
        """*text* was taken but not sent: due again, unless newer progress came."""
        if self._pending_progress is None:
            self.report_progress(text)

    def statistics(self) -> dict[str, int]:
        return {
            "children": len(self.children),
            "pending_instructions": self._instructions_receive.statistics().current_buffer_used,
        }

    # -- the task's life -----------------------------------------------------------

    async def run(self) -> None:
        """Run the sub-agent until it finishes, fails, is cancelled or interrupted.

        Traced as ``switchboard.task``, a child of the turn (or task) that started it.
        """
        with start_span(
            _tracer,
            "switchboard.task",
            attributes={
                "switchboard.task": self.id,
                "switchboard.agent": self.agent.id,
                "switchboard.depth": self.task.depth,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self._run()
            finally:
                span.set_attribute("switchboard.state", self.task.state.value)

    async def _run(self) -> None:
        finish: Finish | None = None
        try:
            with self.scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._watch_instructions)
                    await self.runtime.update_task(self.id, state=TaskState.WORKING)
                    finish = await self._work(tg)
                    # Children are all done by now; this stops the instructions' watch.
                    tg.cancel_scope.cancel()
        except* Fenced:
            # Another node has taken the conversation over (this one paused past its
            # lease): nothing more of this task can be stored here, nor should be.
            log.info("task taken over", extra={"task_id": self.id})
        except* SwitchboardError as group:
            # A known failure below us (its model gave no usable answer, the store is
            # away): this task fails with a reason that quotes nothing it was working on.
            code = next(
                (e.code for e in group.exceptions if isinstance(e, SwitchboardError)), "internal"
            )
            log.warning("task failed", extra={"task_id": self.id, "error": code})
            reason = (
                "its model gave no usable answer"
                if code == "model_unavailable"
                else "something it needed is not available just now"
            )
            finish = Finish(result=f"{self.agent.name} could not finish: {reason}.", failed=True)
        except* Exception as group:
            # A bug below us (a brain raising, say): fail this task, never its
            # conversation or its siblings. Only ids reach the log.
            log.error(
                "task failed unexpectedly",
                extra={"task_id": self.id, "error": type(group.exceptions[0]).__name__},
            )
            finish = Finish(result=f"{self.agent.name} stopped: an internal error.", failed=True)
        finally:
            with anyio.CancelScope(shield=True):
                await self._finish(finish)

    async def _work(self, tg: TaskGroup) -> Finish:
        brain = self.runtime.brain_for(self.agent)
        history = self._history
        refusal: str | None = None
        for _ in range(MAX_STEPS):
            async with self._step_lock:
                new, self._unacknowledged = self._unacknowledged, []
                work = Work(
                    agent=self.agent,
                    task=self.task,
                    team=self.runtime.team,
                    history=tuple(history),
                    instructions=tuple(self._instructions),
                    new_instructions=tuple(new),
                    refusal=refusal,
                    tools=self._tools(),
                    patient_scope=self.runtime.patient_scope,
                )
                refusal = None
                step = await brain.step(work)
                if new:
                    # The brain has heard them: the chat says so, whatever it does next.
                    await self._steps(Step(StepAction.INSTRUCTION_ACKNOWLEDGED))
                if isinstance(step, Finish):
                    return step
                if isinstance(step, Note):
                    await self.runtime.post(
                        self.task.chat_id, self.agent, step.text, task_id=self.id
                    )
                    history.append(StepRecord(step))
                    continue
                call: _StartedCall | StepRecord | None = None
                if isinstance(step, CallTool):
                    # In flight from here on: what arrives now goes to the call itself.
                    call = self._prepare_call(step)
                    if isinstance(call, _StartedCall):
                        self._in_flight = call
                else:
                    self._delegating = True
            if isinstance(step, CallTool):
                assert call is not None
                try:
                    if isinstance(call, StepRecord):
                        record = call
                        await self._steps(_refused(step.tool, call.error))
                    else:
                        record = await self._run_call(call)
                except _ToolFailed as failure:
                    # The tool itself failed: that fails this task, and only this one.
                    return Finish(result=str(failure), failed=True)
                finally:
                    await self._land()
                history.append(record)
            else:
                assert isinstance(step, Delegate)
                try:
                    history.append(await self._delegate(step, tg))
                except DepthLimitExceeded:
                    cap = self.runtime.settings.depth_cap
                    refusal = f"depth_limit: delegation is capped at depth {cap}"
                    await self.runtime.post(
                        self.task.chat_id,
                        self.agent,
                        f"Delegation refused (depth_limit): tasks may only be nested {cap} "
                        "levels deep, so I have to do this myself.",
                        kind=MessageKind.NOTICE,
                        task_id=self.id,
                    )
                    history.append(StepRecord(step, error="depth_limit"))
                finally:
                    await self._land()
        return Finish(result=f"{self.agent.name} gave up after too many steps.", failed=True)

    async def _land(self) -> None:
        """The step in flight is over: instructions go to the next step again."""
        with anyio.move_on_after(self.runtime.settings.cleanup_deadline, shield=True):
            async with self._step_lock:
                self._in_flight = None
                self._delegating = False

    async def _watch_instructions(self) -> None:
        """Take each instruction as it arrives (see the module's invariants)."""
        async for text in self._instructions_receive:
            async with self._step_lock:
                self._instructions.append(text)
                if self._in_flight is None and not self._delegating:
                    self._unacknowledged.append(text)
                    continue
                await self._take_live(text)

    async def _take_live(self, text: str) -> None:
        """An instruction for a step in flight: to the tool, then acknowledged at once."""
        call = self._in_flight
        effect: str | None = None
        if call is not None and call.tool.amend is not None:
            with anyio.move_on_after(self.runtime.settings.cleanup_deadline):
                try:
                    effect = await call.tool.amend(call.ctx, call.args, text)
                except Exception as exc:
                    # The call goes on without it; the brain still hears the words.
                    log.warning(
                        "amend failed",
                        extra={
                            "task_id": self.id,
                            "tool": call.tool.name,
                            "error": type(exc).__name__,
                        },
                    )
        history = list(self._history)
        if call is not None:
            history.append(StepRecord(CallTool(call.tool.name, call.args)))
        brain = self.runtime.brain_for(self.agent)
        step = await brain.step(
            Work(
                agent=self.agent,
                task=self.task,
                team=self.runtime.team,
                history=tuple(history),
                instructions=tuple(self._instructions),
                new_instructions=(text,),
                tools=self._tools(),
                patient_scope=self.runtime.patient_scope,
            )
        )
        if isinstance(step, Note):
            await self._steps(Step(StepAction.INSTRUCTION_ACKNOWLEDGED), then=step.text)
            self._history.append(StepRecord(step))
        else:
            # The brain wants to act on it: its next regular step hears it as new.
            self._unacknowledged.append(text)
        if effect:
            await self.runtime.post(
                self.task.chat_id, self.agent, effect, kind=MessageKind.NOTICE, task_id=self.id
            )

    def _tools(self) -> tuple[ToolInfo, ...]:
        return tuple(t for t in self.runtime.tool_infos() if t.name in self.agent.tools)

    def _prepare_call(self, step: CallTool) -> _StartedCall | StepRecord:
        tool = self.runtime.toolbox.get(step.tool)
        if tool is None or step.tool not in self.agent.tools:
            return StepRecord(step, error=f"{self.agent.name} has no tool named {step.tool}.")
        scope = self.runtime.patient_scope
        if not may_call_about(scope, step.args):
            return StepRecord(step, error=NO_SUCH_PATIENT)
        ctx = ToolContext(
            workspace_id=self.runtime.conversation.workspace_id,
            task_id=self.id,
            report_progress=self.report_progress,
            patient_scope=scope,
        )
        return _StartedCall(tool, step.args, ctx)

    async def _run_call(self, call: _StartedCall) -> StepRecord:
        tool = call.tool
        step = CallTool(tool.name, call.args)
        await self._steps(Step(StepAction.TOOL_CALLED, tool=tool.name))
        self._started.append(call)
        try:
            result: ToolResult = await tool.run(call.ctx, call.args)
        except ToolError as exc:
            self._started.remove(call)
            await self._steps(_failed(tool.name, "tool_error"))
            raise _ToolFailed(f"{self.agent.name} could not finish: {exc}") from exc
        except Exception as exc:
            self._started.remove(call)
            log.warning(
                "tool raised",
                extra={"task_id": self.id, "tool": tool.name, "error": type(exc).__name__},
            )
            await self._steps(_failed(tool.name, "internal"))
            raise _ToolFailed(f"{self.agent.name} could not finish: {tool.name} failed.") from exc
        # A call that returned (or raised) has nothing left to undo unless it says so;
        # one interrupted by cancellation stays in _started for _clean_up.
        if not result.left_open:
            self._started.remove(call)
        # What came back, counted and never quoted: the result's text follows as the
        # sub-agent's own words.
        returned = Step(
            StepAction.TOOL_RETURNED,
            tool=tool.name,
            outcome=StepOutcome.OK,
            fields=len(result.data),
        )
        await self._steps(returned, then=result.text)
        return StepRecord(step, result=result)

    async def _steps(self, *steps: Step, then: str | None = None) -> None:
        """Show *steps* of this sub-agent's work in its chat, then *then* (its words),
        in one commit."""
        await self.runtime.post_steps(
            self.task.chat_id, self.agent, steps, task_id=self.id, then=then
        )

    async def _delegate(self, step: Delegate, tg: TaskGroup) -> StepRecord:
        children = await self.runtime.start_tasks(
            owner=self.agent,
            parent=self,
            assignments=step.assignments,
            rollup=step.rollup,
            tg=tg,
            announce=step.text,
        )
        started = []
        for child in children:
            view = child.task
            started.append(
                Step(
                    StepAction.TASK_STARTED, task_id=view.id, chat_id=view.chat_id, title=view.title
                )
            )
        await self._steps(*started)
        for child in children:
            await child.done.wait()
        if self.cancel_requested:
            # Our children ended because we are being cancelled: wait for our own turn
            # rather than carrying on as if their results were real.
            await anyio.sleep_forever()
        outcomes = []
        for child in children:
            task = await self.runtime.read_child_result(self.principal, child)
            outcomes.append(Outcome(task, child.data))
        return StepRecord(step, outcomes=tuple(outcomes))

    async def _finish(self, finish: Finish | None) -> None:
        """Store the one terminal state, after clean-up; then tell whoever waits."""
        deadline = self.runtime.settings.cleanup_deadline
        result: str | None
        try:
            if finish is not None:
                state = TaskState.FAILED if finish.failed else TaskState.COMPLETED
                result = finish.result
                self.data = dict(finish.data)
            else:
                stopped = await self._clean_up(deadline)
                if self.cancel_requested:
                    state = TaskState.CANCELLED
                    result = f"Cancelled: {stopped}" if stopped else "Cancelled."
                else:
                    # PROTOCOL.md: a result only once completed, failed or cancelled.
                    state = TaskState.INTERRUPTED
                    result = None
            # Not time-bounded: a terminal state dropped here would leave the task
            # `working` for good. The store bounds its own waits and raises instead.
            await self.runtime.update_task(
                self.id,
                state=state,
                result=result,
                progress=self.take_progress(),
            )
        except SwitchboardError as exc:
            # The store refused: the task stays unfinished there and the next start
            # marks it interrupted. Nothing else can be done from here.
            log.error("terminal state not stored", extra={"task_id": self.id, "error": exc.code})
        finally:
            self._instructions_send.close()
            self._instructions_receive.close()
            self.done.set()
            self.runtime.task_ended(self)

    async def _clean_up(self, deadline: float) -> str:
        """Undo what the cancelled calls started (hang up, withdraw), newest first."""
        undone: list[str] = []
        with anyio.move_on_after(deadline) as scope:
            for call in reversed(self._started):
                if call.tool.cleanup is None:
                    continue
                try:
                    note = await call.tool.cleanup(call.ctx, call.args)
                except Exception as exc:
                    log.warning(
                        "clean-up failed",
                        extra={
                            "task_id": self.id,
                            "tool": call.tool.name,
                            "error": type(exc).__name__,
                        },
                    )
                    note = f"{call.tool.name} could not be cleaned up."
                if note:
                    undone.append(note)
                    await self.runtime.post(
                        self.task.chat_id,
                        self.agent,
                        note,
                        kind=MessageKind.NOTICE,
                        task_id=self.id,
                    )
        if scope.cancelled_caught:
            undone.append("clean-up did not finish in time.")
        self._started.clear()
        return " ".join(undone)

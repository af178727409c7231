"""Brains: what decides an agent's next step.

A primary agent's brain answers each user turn with an :data:`Action`; a sub-agent's
brain takes its work one :data:`Step` at a time. Brains decide, the runtime acts:
brains never start tasks, call tools or touch the store themselves, so every effect
goes through the runtime's ownership, depth and audit checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.models import AgentDefinition, MessageKind, MessageRole, Task, TaskState
from agents.tools import ToolResult

# -- what a primary agent may decide for a user turn ---------------------------------


@dataclass(frozen=True, slots=True)
class Assignment:
    """One piece of delegated work: which of the workspace's agents does what.

    ``subject`` is what the task is about in the person's words ("Ozempic", "Alice"),
    used to find it again ("the Ozempic request"). ``tool``/``args`` name the first
    tool the sub-agent should use, where the delegating agent already knows it.
    """

    agent_id: str
    title: str
    subject: str
    instructions: str
    tool: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the person directly."""

    text: str


@dataclass(frozen=True, slots=True)
class Delegate:
    """Start background tasks and say ``text`` meanwhile.

    With ``rollup`` the tasks form one batch: a single follow-up comes when all of them
    are done, instead of one per task.
    """

    text: str
    assignments: tuple[Assignment, ...]
    rollup: bool = False


@dataclass(frozen=True, slots=True)
class UseTool:
    """Use a tool; the runtime runs it inline or, if slow, as a background task."""

    tool: str
    args: Mapping[str, Any]
    title: str
    subject: str


@dataclass(frozen=True, slots=True)
class CheckStatus:
    """Report the live state of these tasks (all of the agent's tasks if empty)."""

    task_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Instruct:
    """Send new instructions to a running task."""

    task_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel these tasks (and everything they started)."""

    task_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifyCaller:
    """Check who the caller says they are (:attr:`Turn.caller`): the runtime matches
    ``name`` and ``date_of_birth`` against the directory, audits the try without its
    values, and tells the caller how it went."""

    name: str
    date_of_birth: str


@dataclass(frozen=True, slots=True)
class VerifyFirst:
    """Hold this turn until the caller is verified: the runtime asks for their name
    and date of birth, and takes the turn up again once they are verified."""


Action = Reply | Delegate | UseTool | CheckStatus | Instruct | Cancel | VerifyCaller | VerifyFirst

# -- what a sub-agent may do next ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallTool:
    tool: str
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Note:
    """Write ``text`` in the sub-agent's own chat (an acknowledgement, a remark)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    """End the task: ``completed`` with ``result``, or ``failed`` if ``failed``."""

    result: str
    data: Mapping[str, Any] = field(default_factory=dict)
    failed: bool = False


Step = CallTool | Delegate | Note | Finish


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """What a primary agent remembers of a task it started: enough to find it again."""

    id: str
    title: str
    subject: str
    agent_id: str
    terminal: bool
    state: TaskState = TaskState.SUBMITTED
    progress: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One message of the conversation as the primary agent remembers it (PHI).

    ``role`` is ``user`` or ``agent``; ``kind`` the message kind (``reply``,
    ``followup``…); ``task_id`` the task a message is about, if any.
    """

    role: MessageRole
    kind: MessageKind
    text: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """What a brain may know of a tool: enough to choose it and fill its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    expected_latency: float


class Preview(Protocol):
    """Where a brain shows the person its reply while writing it (a model's tokens).

    Each piece is sent at once as a ``message.delta``; the pieces, in order, must be
    the start of the text of the action the brain then returns (a :class:`Reply` or
    :class:`Delegate`), which is stored under the same message id. Text previewed
    before any other action is stored as a reply of its own, ahead of it.
    """

    async def write(self, piece: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CallerStatus:
    """What a brain knows of a phone caller's verification (never who they said)."""

    verified: bool
    tries_left: int

    @property
    def locked(self) -> bool:
        return not self.verified and self.tries_left == 0


@dataclass(frozen=True, slots=True)
class Turn:
    """A user turn, with what the agent needs to decide on it."""

    text: str
    agent: AgentDefinition
    team: tuple[AgentDefinition, ...]
    tasks: tuple[TaskSummary, ...]
    """The tasks this agent started in this conversation, newest first."""
    conversation_id: str = ""
    transcript: tuple[TranscriptLine, ...] = ()
    """The conversation's recent messages, oldest first, ending with this turn's."""
    tools: tuple[ToolInfo, ...] = ()
    """The workspace's tools that the agent or its team may use."""
    preview: Preview | None = None
    """Where to stream the reply while it is written, for brains that can."""
    patient_scope: str | None = None
    """The one patient the conversation may be about (agents.ownership): a brain reads
    the directory through :func:`agents.ownership.scoped`. ``None``: staff's."""
    caller: CallerStatus | None = None
    """Set when a phone caller speaks (``Principal.call``): until they are verified, a
    turn that needs a record is answered with :class:`VerifyFirst` or, when it is their
    name and date of birth, :class:`VerifyCaller`; the runtime holds anything else."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished task and the structured data its sub-agent left."""

    task: Task
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A step a sub-agent took and what came of it."""

    step: Step
    result: ToolResult | None = None
    error: str | None = None
    outcomes: tuple[Outcome, ...] = ()


@dataclass(frozen=True, slots=True)
class Work:
    """A sub-agent's task and its history so far, for its brain's next step.

    ``new_instructions`` holds what arrived since the last step, in order; the brain
    must take them into account (and usually acknowledge them with a :class:`Note`).
    ``refusal`` is set when the previous step's delegation was refused (depth limit).
    """

    agent: AgentDefinition
    task: Task
    team: tuple[AgentDefinition, ...]
    history: tuple[StepRecord, ...]
    instructions: tuple[str, ...]
    new_instructions: tuple[str, ...]
    refusal: str | None = None
    tools: tuple[ToolInfo, ...] = ()
    """The workspace's tools the agent may use, with their parameter schemas."""
    patient_scope: str | None = None
    """As :attr:`Turn.patient_scope`."""


class Brain(Protocol):
    """Decides; never acts. Must be deterministic enough to test, and cancellable."""

    async def respond(self, turn: Turn) -> Action: ...

    async def step(self, work: Work) -> Step: ...

    def status_text(self, tasks: Sequence[Task]) -> str:
        """A reply about *tasks* from their live state (empty: nothing is running)."""
        ...

    def cancel_text(self, tasks: Sequence[Task]) -> str:
        """A reply after cancelling *tasks* (as they are now: cancelling or terminal)."""
        ...

    def instruct_text(self, task: Task) -> str: ...

    def tool_text(self, tool: str, result: ToolResult) -> str:
        """A reply from a quick tool's result, used inline."""
        ...

    def progress_text(self, task: Task, progress: str) -> str:
        """The progress message for the person ("Still waiting on the pharmacy…")."""
        ...

    def followup_text(self, outcomes: Sequence[Outcome], *, rollup: bool) -> str:
        """The unsolicited follow-up once a task, or a whole batch, is done."""
        ...

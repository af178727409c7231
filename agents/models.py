"""The runtime's domain records: principals, agents, chats, tasks and stream events.

Everything here is an immutable value. Records change by being replaced
(``dataclasses.replace``), which keeps the state machine in :mod:`agents.states` the
only place a task's state moves.
"""

from __future__ import annotations

import base64
import enum
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Format *moment* as RFC 3339 in UTC with millisecond precision and a ``Z``."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # By hand: a few times quicker than isoformat() and a replace(), and every task in
    # every frame has two of these.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


def parse_rfc3339(text: str) -> datetime:
    """Parse what :func:`rfc3339` wrote."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _RandomPool:
    """The operating system's random bytes, read 4 KiB at a time.

    Every message, task and chat gets an id, and each read of the OS's generator is a
    system call that lets go of the GIL (and waits to take it back): a few per turn,
    in the event loop. A pool read once per 256 ids gives the same bytes, from the same
    generator. A forked child starts with an empty pool, never its parent's.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool, self._at = b"", 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._pool):
                self._pool, self._at = os.urandom(max(self.SIZE, n)), 0
            start = self._at
            self._at = start + n
            return self._pool[start : start + n]


_RANDOM = _RandomPool()


def new_id(prefix: str) -> str:
    """An unguessable id (128 random bits) with a readable *prefix*: ``task_…``."""
    token = base64.urlsafe_b64encode(_RANDOM.take(16)).rstrip(b"=").decode("ascii")
    return f"{prefix}_{token}"


class Role(enum.StrEnum):
    """What kind of principal a token names (PROTOCOL.md, Identity)."""

    PERSON = "person"
    AGENT = "agent"
    SERVICE = "service"
    AUDITOR = "auditor"


class TaskState(enum.StrEnum):
    """A background task's state (PROTOCOL.md, TaskView). See :mod:`agents.states`."""

    SUBMITTED = "submitted"
    WORKING = "working"
    INPUT_REQUIRED = "input_required"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED, TaskState.INTERRUPTED}
)


class EventType(enum.StrEnum):
    MESSAGE = "message"
    TASK = "task"
    DELTA = "message.delta"


class MessageRole(enum.StrEnum):
    USER = "user"
    AGENT = "agent"


class MessageKind(enum.StrEnum):
    REPLY = "reply"
    PROGRESS = "progress"
    FOLLOWUP = "followup"
    NOTICE = "notice"
    STEP = "step"
    """A step of a sub-agent's work, in its own chat (docs/PROTOCOL.md, additions)."""


class ChatKind(enum.StrEnum):
    CONVERSATION = "conversation"
    TASK = "task"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the claims of a verified token, or an agent inside the runtime.

    ``act_for`` is the person a ``service`` acts for (the voice bridge for a caller).
    ``patient_id`` makes the principal a patient: the one record of the workspace's
    directory it may see and hear about (:func:`agents.ownership.may_see_patient`).
    ``None`` is staff, who may see the directory. ``call`` makes it a **caller**: a
    service carrying a phone call whose caller has not shown who they are; the
    conversation's agent verifies them (:mod:`agents.verification`) before it speaks of
    any record (:func:`agents.ownership.principal_scope`).
    """

    workspace_id: str
    id: str
    role: Role
    name: str | None = None
    act_for: str | None = None
    patient_id: str | None = None
    call: str | None = None

    @property
    def person_id(self) -> str | None:
        """The person this principal is, or speaks for; ``None`` for agents and auditors."""
        if self.role is Role.PERSON:
            return self.id
        if self.role is Role.SERVICE:
            return self.act_for
        return None


@dataclass(frozen=True, slots=True)
class Author:
    """``{"id", "name"}`` of whoever wrote a message or runs a task."""

    id: str
    name: str

    def to_wire(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    """One of a workspace's agents. Sub-agents are drawn from these, never made up."""

    workspace_id: str
    id: str
    name: str
    description: str
    instructions: str
    tools: tuple[str, ...] = ()
    brain: str = "rule"
    primary: bool = False
    examples: tuple[str, ...] = ()
    """Phrases a person might use to ask for this agent's work (the rule brain reads them)."""

    @property
    def author(self) -> Author:
        return Author(self.id, self.name)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A person's conversation with a primary agent; its stream is ``chat_id``'s."""

    id: str
    workspace_id: str
    person_id: str
    agent_id: str
    chat_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Chat:
    """A stream of events: a conversation's own, or one sub-agent's (``task_id`` set)."""

    id: str
    workspace_id: str
    conversation_id: str
    kind: ChatKind
    title: str
    agent: Author
    person_id: str
    created_at: datetime
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """A background task: one sub-agent's piece of work (PROTOCOL.md, TaskView).

    ``owner_agent_id`` is the agent that started it; with the conversation's person it
    is the task's only owner (:mod:`agents.ownership`). ``batch_id`` groups the tasks of
    one fan-out so that a single roll-up follows when all of them are done.
    """

    id: str
    workspace_id: str
    conversation_id: str
    chat_id: str
    title: str
    agent: Author
    state: TaskState
    depth: int
    parent_id: str | None
    owner_agent_id: str
    person_id: str
    created_at: datetime
    updated_at: datetime
    progress: str | None = None
    result: str | None = None
    batch_id: str | None = None
    node_id: str | None = None
    subject: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    # Whether the primary agent's follow-up (or the batch's roll-up) about this ended
    # task is stored: recovery gives one to every ended depth-1 task still without.
    followed_up: bool = False

    def view(self) -> dict[str, Any]:
        """The wire ``TaskView`` (PROTOCOL.md); holds PHI, so every read is audited."""
        return {
            "id": self.id,
            "title": self.title,
            "agent": self.agent.to_wire(),
            "state": self.state.value,
            "depth": self.depth,
            "parent_id": self.parent_id,
            "chat_id": self.chat_id,
            "conversation_id": self.conversation_id,
            "progress": self.progress,
            "result": self.result,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


class StepAction(enum.StrEnum):
    """What a sub-agent did at one step of its work (a ``step`` message's ``step``)."""

    TOOL_CALLED = "tool.called"
    TOOL_RETURNED = "tool.returned"
    TOOL_REFUSED = "tool.refused"
    INSTRUCTION_RECEIVED = "instruction.received"
    INSTRUCTION_ACKNOWLEDGED = "instruction.acknowledged"
    TASK_STARTED = "task.started"


class StepOutcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a sub-agent's work as its chat shows it: which tool, what came back
    (how many fields, ok or failed and a reason code), a child task it started.

    It never holds a value a tool returned or an argument it was given: a step is what
    a transcript may say of the work without repeating the records it touched.
    """

    action: StepAction
    tool: str | None = None
    outcome: StepOutcome | None = None
    reason: str | None = None
    """A code (``tool_error``, ``no_such_tool``, ``not_found``...), never a message."""
    fields: int | None = None
    task_id: str | None = None
    """``task.started``: the child task, with its ``chat_id`` and ``title``."""
    chat_id: str | None = None
    title: str | None = None

    def summary(self) -> str:
        """The step in words, for the message's ``text``: "records.lookup returned 3 fields"."""
        tool = self.tool or "A tool"
        match self.action:
            case StepAction.TOOL_CALLED:
                return f"Called {tool}."
            case StepAction.TOOL_RETURNED if self.outcome is StepOutcome.FAILED:
                return f"{tool} failed ({self.reason or 'error'})."
            case StepAction.TOOL_RETURNED:
                if self.fields is None:
                    return f"{tool} returned."
                return f"{tool} returned {self.fields} field{'' if self.fields == 1 else 's'}."
            case StepAction.TOOL_REFUSED:
                return f"{tool} was not called ({self.reason or 'refused'})."
            case StepAction.INSTRUCTION_RECEIVED:
                return "New instructions received."
            case StepAction.INSTRUCTION_ACKNOWLEDGED:
                return "New instructions acknowledged."
            case StepAction.TASK_STARTED:
                return f"Started a sub-task: {self.title or 'background task'}."
        raise AssertionError(self.action)  # pragma: no cover - every action is above

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"action": self.action.value}
        for key in ("tool", "outcome", "reason", "fields", "task_id", "chat_id", "title"):
            value = getattr(self, key)
            if value is not None:
                wire[key] = value.value if isinstance(value, enum.Enum) else value
        return wire

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Step:
        outcome = data.get("outcome")
        fields = data.get("fields")
        return cls(
            action=StepAction(data["action"]),
            tool=_str_or_none(data.get("tool")),
            outcome=StepOutcome(outcome) if outcome is not None else None,
            reason=_str_or_none(data.get("reason")),
            fields=int(fields) if fields is not None else None,
            task_id=_str_or_none(data.get("task_id")),
            chat_id=_str_or_none(data.get("chat_id")),
            title=_str_or_none(data.get("title")),
        )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


SERVER_AUTHOR = Author("switchboard", "Switchboard")
"""Who writes the server's own ``notice`` messages."""


@dataclass(frozen=True, slots=True)
class Message:
    """The body of a ``message`` stream event.

    ``message_id`` is unique and opaque; a reply streamed as ``message.delta`` frames
    is stored under the id its deltas carried.
    """

    role: MessageRole
    author: Author
    kind: MessageKind
    text: str
    task_id: str | None = None
    message_id: str = field(default_factory=lambda: new_id("msg"), compare=False)
    """Not part of what the message says: two messages saying the same are equal."""
    call: str | None = field(default=None, compare=False)
    """The phone call whose caller may hear this message: the call of the turn it
    answers, or of the turn that started the task it is news of (a caller's voice
    connection speaks only its own call's messages)."""
    step: Step | None = None
    """For ``kind`` ``step``: what the step was, structured (its ``text`` says it)."""

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "message_id": self.message_id,
            "role": self.role.value,
            "author": self.author.to_wire(),
            "kind": self.kind.value,
            "text": self.text,
        }
        if self.task_id is not None:
            wire["task_id"] = self.task_id
        if self.call is not None:
            wire["call"] = self.call
        if self.step is not None:
            wire["step"] = self.step.to_wire()
        return wire


@dataclass(frozen=True, slots=True)
class MessageDelta:
    """The next piece of a message still being written: a preview, never stored.

    It travels as a :class:`StreamEvent` with ``seq`` 0, so that it reaches the chat's
    watchers on every node the way stored events do, and goes on the wire as a
    ``message.delta`` control frame.
    """

    message_id: str
    text: str

    def to_wire(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "text": self.text}


def interruption_notice(count: int) -> Message:
    """The ``notice`` that tells a person a restart interrupted *count* of their tasks."""
    noun = "task" if count == 1 else "tasks"
    return Message(
        MessageRole.AGENT,
        SERVER_AUTHOR,
        MessageKind.NOTICE,
        f"A server restart interrupted {count} background {noun}. Ask again to start over.",
    )


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """The body of a ``task`` stream event: the task as it is now."""

    task: Task

    def to_wire(self) -> dict[str, Any]:
        return {"task": self.task.view()}


EventBody = Message | TaskUpdate | MessageDelta


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """A stored event of one chat; ``seq`` is gapless per chat and starts at 1.

    The one exception is a :class:`MessageDelta`, which is never stored: its ``seq`` is
    0, and :attr:`is_preview` is true.
    """

    chat_id: str
    seq: int
    ts: datetime
    body: EventBody
    wire: str | None = field(default=None, compare=False, repr=False)
    """The frame :meth:`to_wire` gives, already encoded, where the store encoded it (it
    keeps the same text): a socket sends it as it is."""

    @property
    def type(self) -> EventType:
        if isinstance(self.body, Message):
            return EventType.MESSAGE
        if isinstance(self.body, MessageDelta):
            return EventType.DELTA
        return EventType.TASK

    @property
    def is_preview(self) -> bool:
        """A ``message.delta``: not stored, no ``seq``, never replayed."""
        return isinstance(self.body, MessageDelta)

    @property
    def task_id(self) -> str | None:
        """The task this event is about, if any (its contents are PHI)."""
        if isinstance(self.body, TaskUpdate):
            return self.body.task.id
        if isinstance(self.body, MessageDelta):
            return None
        return self.body.task_id

    def to_wire(self) -> dict[str, Any]:
        """The event as PROTOCOL.md sends it (a delta as its control frame)."""
        if isinstance(self.body, MessageDelta):
            return {"type": EventType.DELTA.value, "chat_id": self.chat_id, **self.body.to_wire()}
        wire: dict[str, Any] = {
            "seq": self.seq,
            "type": self.type.value,
            "chat_id": self.chat_id,
            "ts": rfc3339(self.ts),
        }
        wire.update(self.body.to_wire())
        return wire


def body_to_json(body: EventBody) -> dict[str, Any]:
    """Serialize an event body for storage (the inverse of :func:`body_from_json`)."""
    if isinstance(body, Message):
        return {"type": "message", **body.to_wire()}
    if isinstance(body, MessageDelta):
        return {"type": "message.delta", **body.to_wire()}
    return {"type": "task", "task": task_to_json(body.task)}


def body_from_json(data: Mapping[str, Any]) -> EventBody:
    """Rebuild an event body stored by :func:`body_to_json`."""
    if data["type"] == "message":
        author = data["author"]
        return Message(
            role=MessageRole(data["role"]),
            author=Author(author["id"], author["name"]),
            kind=MessageKind(data["kind"]),
            text=data["text"],
            task_id=data.get("task_id"),
            # Stored before messages had ids: one derived from the stored text's place
            # would change with nothing; a fresh one per read is still unique.
            message_id=data.get("message_id") or new_id("msg"),
            call=data.get("call"),
            step=Step.from_wire(data["step"]) if data.get("step") else None,
        )
    if data["type"] == "message.delta":
        return MessageDelta(str(data["message_id"]), str(data["text"]))
    return TaskUpdate(task_from_json(data["task"]))


def task_to_json(task: Task) -> dict[str, Any]:
    """Every field of *task* as JSON-ready values (storage, not the wire)."""
    return {
        "id": task.id,
        "workspace_id": task.workspace_id,
        "conversation_id": task.conversation_id,
        "chat_id": task.chat_id,
        "title": task.title,
        "agent": task.agent.to_wire(),
        "state": task.state.value,
        "depth": task.depth,
        "parent_id": task.parent_id,
        "owner_agent_id": task.owner_agent_id,
        "person_id": task.person_id,
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(task.updated_at),
        "progress": task.progress,
        "result": task.result,
        "batch_id": task.batch_id,
        "node_id": task.node_id,
        "subject": task.subject,
        "params": dict(task.params),
    }


def task_from_json(data: Mapping[str, Any]) -> Task:
    """Rebuild a task stored by :func:`task_to_json`."""
    agent = data["agent"]
    return Task(
        id=data["id"],
        workspace_id=data["workspace_id"],
        conversation_id=data["conversation_id"],
        chat_id=data["chat_id"],
        title=data["title"],
        agent=Author(agent["id"], agent["name"]),
        state=TaskState(data["state"]),
        depth=int(data["depth"]),
        parent_id=data.get("parent_id"),
        owner_agent_id=data["owner_agent_id"],
        person_id=data["person_id"],
        created_at=parse_rfc3339(data["created_at"]),
        updated_at=parse_rfc3339(data["updated_at"]),
        progress=data.get("progress"),
        result=data.get("result"),
        batch_id=data.get("batch_id"),
        node_id=data.get("node_id"),
        subject=data.get("subject", ""),
        params=dict(data.get("params") or {}),
    )


@dataclass(frozen=True, slots=True)
class Patient:
    """A patient record of a workspace (the demo's are fictional). Everything here is PHI."""

    workspace_id: str
    id: str
    name: str
    date_of_birth: str
    mrn: str
    phone: str
    onboarding_complete: bool
    medications: tuple[str, ...] = ()
    allergies: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    provider: str = ""
    insurer: str = ""

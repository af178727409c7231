"""The runtime's ports: what it needs from storage, the bus and the audit trail.

``server/`` provides the real implementations (SQLModel, Redis, :mod:`audit`);
:mod:`agents.memory` provides in-memory ones for tests and the terminal demo.
Every method may raise :class:`~agents.exceptions.Unavailable` when its backend
refuses; none returns partial results.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from agents.commands import Answer, Command
from agents.models import (
    AgentDefinition,
    Chat,
    Conversation,
    EventBody,
    Patient,
    Principal,
    StreamEvent,
    Task,
)
from agents.tools import ToolBox

if TYPE_CHECKING:
    from agents.brains import Brain


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append to ``chat_id``; the store gives it its ``seq`` and ``ts``."""

    chat_id: str
    body: EventBody


@dataclass(frozen=True, slots=True)
class Fence:
    """The fencing number under which a node writes to a conversation it is home to."""

    conversation_id: str
    number: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What one :meth:`Store.commit` writes in a single transaction.

    Chats are created, tasks inserted or replaced, then events appended in order, each
    with the next ``seq`` of its chat. Either all of it is stored or none of it. With a
    ``fence``, it is stored only if that is still the conversation's fencing number,
    checked in the same transaction (else :class:`~agents.exceptions.Fenced`).
    """

    chats: Sequence[Chat] = ()
    tasks: Sequence[Task] = ()
    events: Sequence[NewEvent] = ()
    fence: Fence | None = None
    background: bool = False
    """Nobody waits on it (a progress flush): a store may write commits that somebody
    does wait on before it, though never another of the same conversation's (whose
    runtime commits one at a time)."""


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A conversation the store holds unsettled work of (:meth:`Store.unsettled`)."""

    workspace_id: str
    conversation_id: str
    running: bool
    """Whether a task of it is still in a non-terminal state; if not, what it holds is
    ended depth-1 work whose follow-up was never stored."""


class Store(Protocol):
    """The source of truth for conversations, chats, stream events and tasks."""

    async def create_conversation(self, conversation: Conversation, chat: Chat) -> None: ...

    async def get_conversation(
        self, workspace_id: str, conversation_id: str
    ) -> Conversation | None: ...

    async def get_chat(self, workspace_id: str, chat_id: str) -> Chat | None: ...

    async def list_chats(self, workspace_id: str, person_id: str) -> list[Chat]:
        """The chats of the person's conversations (their own and their tasks'), newest first."""
        ...

    async def commit(self, changes: Changes) -> list[StreamEvent]:
        """Store *changes* atomically; return the appended events with their ``seq``.

        Raises :class:`~agents.exceptions.Fenced` if ``changes.fence`` is stale.
        """
        ...

    def hurry(self, conversation_id: str) -> None:
        """Somebody now waits on the conversation's background commit (one of its is
        queued behind it): if the store holds it back, it goes with the others."""
        ...

    async def take_home(
        self, conversation_id: str, owner: str = "", *, alive_within: float | None = None
    ) -> int:
        """Make *owner* the conversation's home: move its fencing number up and return it.

        Called by a node that has just taken the conversation's lease: from then on,
        commits under any older number are refused. With *alive_within*, refused with
        :class:`~agents.exceptions.HomedElsewhere` while the recorded home is another
        node that has sent a heartbeat within that many seconds (and is not a former
        incarnation of *owner*'s node). Raises ``NotFound`` if it is unknown.
        """
        ...

    async def release_home(self, conversation_id: str, owner: str) -> None:
        """*owner* no longer runs the conversation (if it was its recorded home)."""
        ...

    async def heartbeat(self, owner: str) -> None:
        """*owner* (``node_id/incarnation``) is alive now."""
        ...

    async def forget_node(self, owner: str) -> None:
        """*owner* stops: it is no one's home any more (a graceful stop)."""
        ...

    async def events_after(self, chat_id: str, after: int, limit: int) -> list[StreamEvent]:
        """Up to *limit* events of *chat_id* with ``seq > after``, oldest first."""
        ...

    async def last_seq(self, chat_id: str) -> int: ...

    async def get_task(self, workspace_id: str, task_id: str) -> Task | None: ...

    async def list_tasks(self, workspace_id: str, conversation_id: str) -> list[Task]:
        """The conversation's tasks, oldest first."""
        ...

    async def unsettled(self) -> list[Unsettled]:
        """Every conversation with a task in a non-terminal state, or with a depth-1 task
        that ended (not ``interrupted``) with no follow-up stored yet; one entry each.
        """
        ...

    async def list_agents(self, workspace_id: str) -> list[AgentDefinition]: ...

    async def save_agents(self, agents: Sequence[AgentDefinition]) -> None: ...


class PatientDirectory(Protocol):
    """The workspace's patient records, read by the records tool and the rule brain."""

    async def list_patients(self, workspace_id: str) -> list[Patient]: ...

    async def get_patient(self, workspace_id: str, patient_id: str) -> Patient | None: ...

    async def save_patients(self, patients: Sequence[Patient]) -> None: ...


class Publisher(Protocol):
    """Hands stored events to whoever watches their chat (this node or others)."""

    async def publish(self, workspace_id: str, events: Sequence[StreamEvent]) -> None:
        """Publish *events*, already committed, in order. Never raises for no listeners.

        A :class:`~agents.models.MessageDelta` event (``seq`` 0) is the one kind
        published without being stored: a preview of a message still being written.
        """
        ...


class Leases(Protocol):
    """Which node is a conversation's home: at most one at a time (DESIGN.md, Many nodes).

    A lease lapses unless its holder renews it; ``owner`` names this process (its node
    id and a per-start incarnation, so a restarted node is not taken for its former
    self). Every method may raise :class:`~agents.exceptions.Unavailable`.
    """

    owner: str
    ttl: float
    """Seconds a lease lasts unless renewed (renewals come every third of it)."""

    async def acquire(self, conversation_id: str) -> bool:
        """Take the conversation's lease if it is free (or already ours); else ``False``."""
        ...

    async def renew(self, conversation_ids: Sequence[str]) -> list[str]:
        """Extend our leases; return the ids among them another process now holds."""
        ...

    async def release(self, conversation_id: str) -> None:
        """Give the lease up at once, if it is still ours."""
        ...

    async def holders(self, conversation_ids: Sequence[str]) -> dict[str, str | None]:
        """Who holds each lease (an ``owner``), or ``None`` where it is free."""
        ...


def home_is_alive(home: str, taker: str, seen: float | None, alive_within: float) -> bool:
    """Whether recorded *home* still counts as alive for *taker* (both ``node/incarnation``).

    A home of the taker's own node id but another incarnation is its former self, so
    dead: node ids are unique per node, and a node restarts as a new incarnation.
    """
    if home.split("/", 1)[0] == taker.split("/", 1)[0]:
        return False
    return seen is not None and time.time() - seen < alive_within


class Relay(Protocol):
    """Carries a command to the node that is a conversation's home, and its answer back.

    Raises what the home raised (``NotFound``, ``Conflict``, ``RateLimited``...),
    :class:`~agents.exceptions.NotHome` if that node no longer runs the conversation,
    and :class:`~agents.exceptions.Unavailable` if it cannot be reached in time.
    """

    async def forward(
        self, home: str, conversation: Conversation, principal: Principal, command: Command
    ) -> Answer: ...


class AuditType(enum.StrEnum):
    PHI_RECORD_VIEWED = "PHI_RECORD_VIEWED"
    ACCESS_DENIED = "ACCESS_DENIED"
    TASK_STARTED = "TASK_STARTED"
    TASK_INSTRUCTED = "TASK_INSTRUCTED"
    TASK_CANCELLED = "TASK_CANCELLED"
    CALLER_VERIFICATION = "CALLER_VERIFICATION"


class AuditOutcome(enum.StrEnum):
    SUCCESS = "success"
    DENIED = "denied"


class AuditReason(enum.StrEnum):
    """Why an outcome is what it is: an enumeration, never free text."""

    OWNER = "owner"
    NOT_OWNER = "not_owner"
    NO_SUCH_RECORD = "no_such_record"
    OTHER_WORKSPACE = "other_workspace"
    VERIFIED = "verified"
    NO_MATCH = "no_match"
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What the runtime asks the audit trail to record: who, what (ids), how, outcome.

    It carries no contents: never text, titles, names or tool arguments. ``channel``
    names the path (``ws:task.status``, ``http:GET /v1/tasks/{task_id}``,
    ``agent:child_result``) and ``on_behalf_of`` the chain of principals the actor
    acts for (an agent for its conversation's person, a bridge for its caller).
    """

    type: AuditType
    actor: Principal
    channel: str
    outcome: AuditOutcome = AuditOutcome.SUCCESS
    reason: AuditReason = AuditReason.OWNER
    task_id: str | None = None
    chat_id: str | None = None
    conversation_id: str | None = None
    on_behalf_of: tuple[str, ...] = field(default=())
    request_id: str | None = None


class AuditSink(Protocol):
    """Appends to the audit trail. Raises :class:`~agents.exceptions.Unavailable` if it
    cannot, and then the read it guards must not happen (fail closed)."""

    async def record(self, entry: AuditEntry) -> None: ...

    async def record_many(self, entries: Sequence[AuditEntry]) -> None:
        """Append *entries* in order, all or none (in one write where the sink can)."""
        ...


@dataclass(frozen=True, slots=True)
class WorkspaceKit:
    """What a workspace's conversations run with now: its agents, tools and brains.

    ``revision`` grows whenever the workspace is applied with changes; a conversation
    takes a newer kit at its next turn.
    """

    workspace_id: str
    revision: int
    agents: tuple[AgentDefinition, ...]
    toolbox: ToolBox
    brains: Mapping[str, Brain]


class WorkspaceSource(Protocol):
    """Where a node finds each workspace's current kit (``server.workspaces``)."""

    async def kit(self, workspace_id: str) -> WorkspaceKit | None:
        """The workspace's kit, or ``None`` for a workspace applied from no file.

        Cheap when nothing changed: implementations cache, and check the stored
        revision at most every so often. Raises ``Unavailable`` if the store refuses.
        """
        ...


class Observer(Protocol):
    """Where the runtime reports how long things took (the node's metrics).

    Only durations, states and agent ids (workspace configuration): never a
    conversation, task or person id, never words.
    """

    def turn_answered(self, seconds: float) -> None:
        """A person's turn was answered: *seconds* from its words stored to the answer."""

    def task_ended(self, agent_id: str, state: str, seconds: float) -> None:
        """A background task reached *state*, *seconds* after it was submitted."""


class NoObserver:
    """An :class:`Observer` that keeps nothing."""

    def turn_answered(self, seconds: float) -> None:
        pass

    def task_ended(self, agent_id: str, state: str, seconds: float) -> None:
        pass

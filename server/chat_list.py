"""The Chats view as one principal sees it, kept current by live events; no I/O.

:class:`ChatList` holds the chats a principal may see (as the host listed them) and
turns each live event of the workspace into what changed in that list: entries to
send again, and chat ids it has never met, which the socket must look up through the
ownership check before anything of them is shown (:meth:`ChatList.add` or
:meth:`ChatList.hide`). It never decides visibility itself.

Invariants:

* An entry is only ever created by :meth:`ChatList.add`, that is after the caller's
  ownership check; a hidden chat's events change nothing and reveal nothing.
* :meth:`ChatList.apply` returns an entry only when something a client shows changed
  (state, progress, newest event), so a replayed or duplicated event sends nothing.
* The memory of hidden chats is bounded (:data:`HIDDEN_CAP`): when full it is
  forgotten, which costs a look-up again, never a leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents.models import Chat, ChatKind, StreamEvent, Task, TaskState, TaskUpdate, rfc3339

HIDDEN_CAP = 4096
"""Chat ids remembered as not this principal's; past this, the memory starts over."""


@dataclass(slots=True)
class ChatEntry:
    """One chat of the Chats view: what GET /v1/chats lists, and its newest news."""

    chat: Chat
    last_seq: int
    updated_at: datetime
    state: TaskState | None = None
    progress: str | None = None

    @classmethod
    def of(
        cls, chat: Chat, task: Task | None, *, last_seq: int, updated_at: datetime | None
    ) -> ChatEntry:
        """The entry for *chat* (with its *task*, for a task's chat)."""
        entry = cls(chat, last_seq, updated_at or chat.created_at)
        if chat.kind is ChatKind.TASK and task is not None and task.id == chat.task_id:
            entry.state = task.state
            entry.progress = task.progress
        return entry

    def to_wire(self) -> dict[str, Any]:
        chat = self.chat
        wire: dict[str, Any] = {
            "id": chat.id,
            "conversation_id": chat.conversation_id,
            "kind": chat.kind.value,
            "title": chat.title,
            "agent": chat.agent.to_wire(),
            "task_id": chat.task_id,
            "created_at": rfc3339(chat.created_at),
            "updated_at": rfc3339(self.updated_at),
            "last_seq": self.last_seq,
        }
        if chat.kind is ChatKind.TASK:
            wire["state"] = (self.state or TaskState.SUBMITTED).value
            wire["progress"] = self.progress
        return wire


@dataclass(frozen=True, slots=True)
class Applied:
    """What one live event changed: entries to send, chat ids to look up first."""

    changed: tuple[ChatEntry, ...] = ()
    unknown: tuple[str, ...] = ()


class ChatList:
    """One principal's chats, by id; see the module's invariants."""

    __slots__ = ("_entries", "_hidden")

    def __init__(self, entries: Iterable[ChatEntry] = ()) -> None:
        self._entries: dict[str, ChatEntry] = {entry.chat.id: entry for entry in entries}
        self._hidden: set[str] = set()

    def entries(self) -> list[ChatEntry]:
        """Every entry, newest chat first (as GET /v1/chats lists them)."""
        return sorted(
            self._entries.values(), key=lambda e: (e.chat.created_at, e.chat.id), reverse=True
        )

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self._entries

    def add(self, entry: ChatEntry) -> ChatEntry:
        """Show *entry* from now on: the caller has checked that it may be seen."""
        self._hidden.discard(entry.chat.id)
        self._entries[entry.chat.id] = entry
        return entry

    def hide(self, chat_id: str) -> None:
        """Remember that *chat_id* is not this principal's: its events are dropped."""
        if len(self._hidden) >= HIDDEN_CAP:
            self._hidden.clear()
        self._hidden.add(chat_id)

    def apply(self, event: StreamEvent) -> Applied:
        """What *event* (any live event of the workspace) changes in this list."""
        if event.is_preview:
            return Applied()
        changed: list[ChatEntry] = []
        unknown: list[str] = []
        # A task's change reaches its conversation's chat and its own: either names it.
        body = event.body
        if isinstance(body, TaskUpdate):
            task = body.task
            entry = self._entries.get(task.chat_id)
            if entry is None:
                if task.chat_id not in self._hidden:
                    unknown.append(task.chat_id)
            elif entry.state != task.state or entry.progress != task.progress:
                entry.state = task.state
                entry.progress = task.progress
                entry.updated_at = max(entry.updated_at, event.ts)
                changed.append(entry)
        entry = self._entries.get(event.chat_id)
        if entry is None:
            if event.chat_id not in self._hidden and event.chat_id not in unknown:
                unknown.insert(0, event.chat_id)
        elif event.seq > entry.last_seq:
            entry.last_seq = event.seq
            entry.updated_at = max(entry.updated_at, event.ts)
            if entry not in changed:
                changed.append(entry)
        return Applied(tuple(changed), tuple(unknown))

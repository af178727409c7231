"""The Chats view's list, without I/O: what a live event changes, and what it may not."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from agents.models import (
    Author,
    Chat,
    ChatKind,
    Message,
    MessageDelta,
    MessageKind,
    MessageRole,
    StreamEvent,
    Task,
    TaskState,
    TaskUpdate,
    utcnow,
)
from server.chat_list import HIDDEN_CAP, ChatEntry, ChatList

NOW = utcnow()
AGENT = Author("prior-auth", "Prior auth")


def _task(state: TaskState = TaskState.WORKING, progress: str | None = None) -> Task:
    return Task(
        id="task_1",
        workspace_id="demo",
        conversation_id="conv_1",
        chat_id="chat_t",
        title="Prior auth",
        agent=AGENT,
        state=state,
        depth=1,
        parent_id=None,
        owner_agent_id="primary",
        person_id="pat",
        created_at=NOW,
        updated_at=NOW,
        progress=progress,
    )


def _chat(chat_id: str, kind: ChatKind, task_id: str | None = None) -> Chat:
    return Chat(
        id=chat_id,
        workspace_id="demo",
        conversation_id="conv_1",
        kind=kind,
        title="Prior auth",
        agent=AGENT,
        person_id="pat",
        created_at=NOW if kind is ChatKind.CONVERSATION else NOW + timedelta(seconds=1),
        task_id=task_id,
    )


def _message(chat_id: str, seq: int) -> StreamEvent:
    body = Message(MessageRole.AGENT, AGENT, MessageKind.REPLY, "hello")
    return StreamEvent(chat_id, seq, NOW + timedelta(seconds=seq), body)


def _listing() -> ChatList:
    conversation = ChatEntry.of(
        _chat("chat_c", ChatKind.CONVERSATION), None, last_seq=3, updated_at=None
    )
    task = ChatEntry.of(
        _chat("chat_t", ChatKind.TASK, "task_1"), _task(), last_seq=2, updated_at=None
    )
    return ChatList([conversation, task])


def test_entries_are_listed_newest_first_with_their_state() -> None:
    chats = _listing()
    wires = [e.to_wire() for e in chats.entries()]
    assert [w["id"] for w in wires] == ["chat_t", "chat_c"]
    assert wires[0]["state"] == "working"
    assert wires[0]["progress"] is None
    assert "state" not in wires[1]
    assert wires[1]["last_seq"] == 3


def test_a_task_update_changes_the_task_chat_and_the_chat_it_came_in() -> None:
    chats = _listing()
    event = StreamEvent(
        "chat_c", 4, NOW + timedelta(seconds=9), TaskUpdate(_task(progress="Faxed"))
    )
    applied = chats.apply(event)
    assert [e.chat.id for e in applied.changed] == ["chat_t", "chat_c"]
    assert applied.unknown == ()
    task_entry = applied.changed[0].to_wire()
    assert task_entry["progress"] == "Faxed"
    assert applied.changed[1].last_seq == 4
    # The same update in the task's own chat: only that chat's newest seq moves.
    again = chats.apply(replace(event, chat_id="chat_t", seq=3))
    assert [(e.chat.id, e.last_seq) for e in again.changed] == [("chat_t", 3)]
    # Heard twice (a replay, a second node): nothing to send.
    assert chats.apply(replace(event, chat_id="chat_t", seq=3)).changed == ()


def test_an_unknown_chat_is_looked_up_and_a_hidden_one_reveals_nothing() -> None:
    chats = _listing()
    other = replace(_task(), id="task_2", chat_id="chat_x", person_id="mallory")
    applied = chats.apply(StreamEvent("chat_y", 1, NOW, TaskUpdate(other)))
    assert applied.changed == ()
    assert applied.unknown == ("chat_y", "chat_x")
    chats.hide("chat_x")
    chats.hide("chat_y")
    assert chats.apply(StreamEvent("chat_y", 2, NOW, TaskUpdate(other))) == type(applied)()
    assert chats.apply(_message("chat_x", 5)).unknown == ()
    assert "chat_x" not in chats


def test_previews_change_nothing() -> None:
    preview = StreamEvent("chat_c", 0, NOW, MessageDelta("msg_1", "hel"))
    assert _listing().apply(preview).changed == ()
    assert _listing().apply(StreamEvent("chat_z", 0, NOW, MessageDelta("m", "x"))).unknown == ()


def test_the_memory_of_hidden_chats_is_bounded() -> None:
    chats = ChatList()
    for n in range(HIDDEN_CAP + 10):
        chats.hide(f"chat_{n}")
    # Forgotten, so looked up again: a cost, never a leak.
    assert chats.apply(_message("chat_0", 1)).unknown == ("chat_0",)
    assert chats.apply(_message(f"chat_{HIDDEN_CAP + 5}", 1)).unknown == ()

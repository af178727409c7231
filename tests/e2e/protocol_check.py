"""What PROTOCOL.md promises about every stream event, checked on what a client received.

:func:`check_stream` takes the frames of one socket (or the events of one HTTP page)
and asserts, for each stream event, the fields and types of the contract, the ``seq``
rules and the task state machine. It collects every violation before failing, so a
failing test names them all at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

CONTROL_TYPES = frozenset({"welcome", "ack", "result", "error", "pong", "message.delta"})
ROLES = frozenset({"user", "agent"})
KINDS = frozenset({"reply", "progress", "followup", "notice", "step"})
"""``step`` is an addition (docs/PROTOCOL.md): a sub-agent's step, in its own chat."""
STEP_ACTIONS = frozenset(
    {
        "tool.called",
        "tool.returned",
        "tool.refused",
        "instruction.received",
        "instruction.acknowledged",
        "task.started",
    }
)
ACTIVE_STATES = frozenset({"submitted", "working", "input_required", "cancelling"})
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled", "interrupted"})
STATES = ACTIVE_STATES | TERMINAL_STATES
# The states whose TaskView carries the outcome text (PROTOCOL.md: "the outcome text
# once completed, failed or cancelled, else null").
STATES_WITH_RESULT = frozenset({"completed", "failed", "cancelled"})
# Forward order of the state machine; working and input_required share a rank because
# a task may move between them both ways.
_RANK = {
    "submitted": 0,
    "working": 1,
    "input_required": 1,
    "cancelling": 2,
    "completed": 3,
    "failed": 3,
    "cancelled": 3,
    "interrupted": 3,
}
TASK_VIEW_FIELDS = (
    "id",
    "title",
    "agent",
    "state",
    "depth",
    "parent_id",
    "chat_id",
    "conversation_id",
    "progress",
    "result",
    "created_at",
    "updated_at",
)
# Fields of a task that never change from one of its events to the next.
_FIXED_TASK_FIELDS = ("title", "agent", "depth", "parent_id", "chat_id", "conversation_id")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_RFC3339_UTC = re.compile(r"([Zz]|[+-]00:00)$")
# "at most twice a second": consecutive progress-only updates of one task are at least
# half a second apart; a little slack for the millisecond rounding of ``ts``.
MIN_PROGRESS_GAP_S = 0.45


class ProtocolViolation(AssertionError):
    """One or more stream events broke PROTOCOL.md."""


def parse_rfc3339(value: Any, *, utc: bool = False) -> datetime | None:
    """The moment *value* names, or ``None`` if it is not RFC 3339 (in UTC with *utc*)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    if utc and not _RFC3339_UTC.search(value):
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC)


def stream_events(frames: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stream events among *frames* (everything but the control frames)."""
    return [dict(f) for f in frames if f.get("type") not in CONTROL_TYPES]


def task_view_problems(view: Any, where: str) -> list[str]:
    """What is wrong with one ``TaskView`` (PROTOCOL.md, TaskView)."""
    if not isinstance(view, dict):
        return [f"{where}: TaskView is not an object: {view!r}"]
    problems = [f"{where}: TaskView lacks {n!r}" for n in TASK_VIEW_FIELDS if n not in view]
    if problems:
        return problems

    def bad(name: str, expected: str) -> None:
        problems.append(f"{where}: TaskView.{name} should be {expected}, got {view[name]!r}")

    for name in ("id", "title", "chat_id", "conversation_id"):
        if not isinstance(view[name], str) or not view[name]:
            bad(name, "a non-empty string")
    agent = view["agent"]
    if not (
        isinstance(agent, dict)
        and isinstance(agent.get("id"), str)
        and agent["id"]
        and isinstance(agent.get("name"), str)
        and agent["name"]
    ):
        bad("agent", '{"id", "name"} strings')
    state = view["state"]
    if state not in STATES:
        bad("state", f"one of {sorted(STATES)}")
    depth = view["depth"]
    if type(depth) is not int or not 1 <= depth <= 3:
        bad("depth", "an int from 1 to 3")
    parent = view["parent_id"]
    if parent is not None and not (isinstance(parent, str) and parent):
        bad("parent_id", "a task id or null")
    if type(depth) is int and (depth == 1) != (parent is None):
        problems.append(f"{where}: depth {depth} with parent_id {parent!r}")
    if view["progress"] is not None and not isinstance(view["progress"], str):
        bad("progress", "a string or null")
    result = view["result"]
    if state in STATES_WITH_RESULT:
        if not isinstance(result, str) or not result:
            bad("result", f"the outcome text once {state}")
    elif state in STATES and result is not None:
        bad("result", f"null while {state}")
    created = parse_rfc3339(view["created_at"])
    updated = parse_rfc3339(view["updated_at"])
    if created is None:
        bad("created_at", "RFC 3339")
    if updated is None:
        bad("updated_at", "RFC 3339")
    if created is not None and updated is not None and updated < created:
        problems.append(f"{where}: updated_at {view['updated_at']} before created_at")
    return problems


def _message_problems(event: Mapping[str, Any], where: str, *, voice: bool) -> list[str]:
    problems: list[str] = []
    if event.get("role") not in ROLES:
        problems.append(f"{where}: role should be user or agent, got {event.get('role')!r}")
    author = event.get("author")
    if not (
        isinstance(author, dict)
        and isinstance(author.get("id"), str)
        and author["id"]
        and isinstance(author.get("name"), str)
        and author["name"]
    ):
        problems.append(f'{where}: author should be {{"id", "name"}} strings, got {author!r}')
    if event.get("kind") not in KINDS:
        problems.append(f"{where}: kind not in {sorted(KINDS)}, got {event.get('kind')!r}")
    if not isinstance(event.get("text"), str) or not event["text"]:
        problems.append(f"{where}: text should be a non-empty string, got {event.get('text')!r}")
    message_id = event.get("message_id")
    if not (isinstance(message_id, str) and message_id):
        problems.append(f"{where}: message_id should be a non-empty string, got {message_id!r}")
    if "task_id" in event and not (isinstance(event["task_id"], str) and event["task_id"]):
        problems.append(f"{where}: task_id should be a task id, got {event['task_id']!r}")
    if event.get("role") == "user" and event.get("kind") != "reply":
        problems.append(f"{where}: a user message of kind {event.get('kind')!r}")
    if event.get("kind") == "step":
        step = event.get("step")
        if not (isinstance(step, dict) and step.get("action") in STEP_ACTIONS):
            problems.append(f"{where}: a step message without a known step.action: {step!r}")
        elif step["action"] == "task.started" and not isinstance(step.get("chat_id"), str):
            problems.append(f"{where}: task.started without the child's chat_id")
        if event.get("role") != "agent" or "task_id" not in event:
            problems.append(f"{where}: a step is an agent's, about its task")
    if "call" in event and not (isinstance(event["call"], str) and event["call"]):
        problems.append(f"{where}: call should be a call id, got {event['call']!r}")
    if voice and event.get("role") == "agent" and not isinstance(event.get("speak"), bool):
        problems.append(f"{where}: an agent message on a voice connection without speak")
    if not voice and "speak" in event:
        problems.append(f"{where}: speak on a connection that is not a voice one")
    return problems


def stream_problems(
    frames: Iterable[Mapping[str, Any]],
    *,
    after: int | Mapping[str, int] = 0,
    chat_id: str | None = None,
    voice: bool = False,
) -> list[str]:
    """Every way the stream events among *frames* break PROTOCOL.md; empty if none.

    *after* is where the replay began (``resume_after``, or the ``after`` of an HTTP
    page): per chat, the first event must be ``after + 1``. A mapping gives it per
    chat (chats it does not name start after 0). With *chat_id* every event must be
    that chat's.
    """
    frames = list(frames)
    problems = delta_problems(frames, chat_id=chat_id)
    last_seq: dict[str, int] = {}
    # Per (chat, task): the last view seen, and the ts of its last progress-only update.
    last_view: dict[tuple[str, str], dict[str, Any]] = {}
    last_progress_ts: dict[tuple[str, str], datetime] = {}
    for event in stream_events(frames):
        where = f"event {event.get('type')!r} seq={event.get('seq')!r}"
        seq = event.get("seq")
        if type(seq) is not int or seq < 1:
            problems.append(f"{where}: seq should be an int >= 1")
            continue
        chat = event.get("chat_id")
        if not isinstance(chat, str) or not chat:
            problems.append(f"{where}: chat_id should be a non-empty string, got {chat!r}")
            continue
        if chat_id is not None and chat != chat_id:
            problems.append(f"{where}: event of chat {chat} on the stream of {chat_id}")
        if chat in last_seq:
            expected = last_seq[chat] + 1
        else:
            start = after.get(chat, 0) if isinstance(after, Mapping) else after
            expected = start + 1
        if seq != expected:
            problems.append(f"{where}: seq {seq} where {expected} was due (a gap or a repeat)")
        last_seq[chat] = seq
        ts = parse_rfc3339(event.get("ts"), utc=True)
        if ts is None:
            problems.append(f"{where}: ts should be RFC 3339 in UTC, got {event.get('ts')!r}")
        kind = event.get("type")
        if kind == "message":
            problems.extend(_message_problems(event, where, voice=voice))
        elif kind == "task":
            view = event.get("task")
            found = task_view_problems(view, where)
            problems.extend(found)
            if found or not isinstance(view, dict):
                continue
            key = (chat, view["id"])
            previous = last_view.get(key)
            if previous is not None:
                problems.extend(_move_problems(previous, view, where))
                progress_only = (
                    previous["state"] == view["state"] and previous["progress"] != view["progress"]
                )
                if progress_only and ts is not None:
                    before = last_progress_ts.get(key)
                    if before is not None and (ts - before).total_seconds() < MIN_PROGRESS_GAP_S:
                        problems.append(
                            f"{where}: progress of task {view['id']} updated "
                            f"{(ts - before).total_seconds():.3f} s after the previous one "
                            "(at most twice a second)"
                        )
                    last_progress_ts[key] = ts
            last_view[key] = view
        elif kind is None:
            problems.append(f"{where}: no type")
    return problems


def delta_problems(frames: Iterable[Mapping[str, Any]], *, chat_id: str | None = None) -> list[str]:
    """How the ``message.delta`` frames among *frames* break PROTOCOL.md ("Streamed
    agent text"): control frames (no ``seq``) with ``message_id``, ``chat_id`` and a
    piece of ``text``; their pieces, in order, the start of the text of the ``message``
    event with that ``message_id`` that follows them on the same socket."""
    problems: list[str] = []
    pieces: dict[str, list[str]] = {}
    chats: dict[str, str] = {}
    for frame in frames:
        if frame.get("type") == "message.delta":
            where = f"message.delta {frame.get('message_id')!r}"
            if "seq" in frame:
                problems.append(f"{where}: a delta with a seq (deltas are not stored)")
            message_id, chat, text = (
                frame.get("message_id"),
                frame.get("chat_id"),
                frame.get("text"),
            )
            if not (isinstance(message_id, str) and message_id):
                problems.append(f"{where}: message_id should be a non-empty string")
                continue
            if not (isinstance(chat, str) and chat) or (chat_id is not None and chat != chat_id):
                problems.append(f"{where}: chat_id {chat!r} is not this stream's")
            if not isinstance(text, str) or not text:
                problems.append(f"{where}: text should be a non-empty string")
                continue
            if chats.setdefault(message_id, str(chat)) != chat:
                problems.append(f"{where}: one message streamed to two chats")
            pieces.setdefault(message_id, []).append(text)
        elif frame.get("type") == "message" and "seq" in frame:
            said = "".join(pieces.pop(str(frame.get("message_id")), []))
            text = frame.get("text")
            if said and not (isinstance(text, str) and text.startswith(said)):
                problems.append(
                    f"message {frame.get('message_id')!r}: its deltas do not add up to the "
                    "start of its text"
                )
    for message_id in pieces:
        problems.append(f"message.delta {message_id!r}: deltas never followed by their message")
    return problems


def _move_problems(previous: Mapping[str, Any], view: Mapping[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    old, new = previous["state"], view["state"]
    if old in TERMINAL_STATES:
        problems.append(f"{where}: task {view['id']} changed after its terminal state {old}")
    elif _RANK[new] < _RANK[old]:
        problems.append(f"{where}: task {view['id']} moved back from {old} to {new}")
    for name in _FIXED_TASK_FIELDS:
        if previous[name] != view[name]:
            problems.append(f"{where}: task {view['id']} changed its {name}")
    if previous["created_at"] != view["created_at"]:
        problems.append(f"{where}: task {view['id']} changed its created_at")
    before, now = parse_rfc3339(previous["updated_at"]), parse_rfc3339(view["updated_at"])
    if before is not None and now is not None and now < before:
        problems.append(f"{where}: task {view['id']} updated_at went backwards")
    return problems


def check_stream(
    frames: Iterable[Mapping[str, Any]],
    *,
    after: int | Mapping[str, int] = 0,
    chat_id: str | None = None,
    voice: bool = False,
) -> list[dict[str, Any]]:
    """Assert PROTOCOL.md on every stream event among *frames*; return those events.

    Raises :class:`ProtocolViolation` listing every problem found (see
    :func:`stream_problems` for *after*, *chat_id* and *voice*).
    """
    frames = list(frames)
    problems = stream_problems(frames, after=after, chat_id=chat_id, voice=voice)
    if problems:
        raise ProtocolViolation("PROTOCOL.md violated:\n  " + "\n  ".join(problems))
    return stream_events(frames)


def check_welcome(
    frame: Mapping[str, Any], *, conversation_id: str | None = None, chat_id: str | None = None
) -> None:
    """Assert a ``welcome``: protocol 1, the conversation or chat, ``last_seq``."""
    assert frame.get("type") == "welcome", frame
    assert frame.get("protocol") == 1, frame
    assert "seq" not in frame, f"a control frame with a seq: {frame}"
    last = frame.get("last_seq")
    assert type(last) is int, frame
    assert last >= 0, frame
    if conversation_id is not None:
        assert frame.get("conversation_id") == conversation_id, frame
    if chat_id is not None:
        assert frame.get("chat_id") == chat_id, frame
    assert "conversation_id" in frame or "chat_id" in frame, frame


def check_error(frame: Mapping[str, Any], code: str, *, id: str | None) -> None:
    """Assert an ``error`` frame with *code*, echoing *id* (absent when ``None``)."""
    assert frame.get("type") == "error", frame
    assert frame.get("code") == code, frame
    assert isinstance(frame.get("message"), str), frame
    assert frame["message"], frame
    assert "seq" not in frame, f"a control frame with a seq: {frame}"
    if id is None:
        assert "id" not in frame or frame["id"] is None, frame
    else:
        assert frame.get("id") == id, frame


def check_result_task(frame: Mapping[str, Any], *, id: str) -> dict[str, Any]:
    """Assert a ``result`` with one full ``TaskView`` answering *id*; return the view."""
    assert frame.get("type") == "result", frame
    assert frame.get("id") == id, frame
    assert "seq" not in frame, f"a control frame with a seq: {frame}"
    problems = task_view_problems(frame.get("task"), f"result {id}")
    assert not problems, problems
    return dict(frame["task"])


def check_result_tasks(frame: Mapping[str, Any], *, id: str) -> list[dict[str, Any]]:
    """Assert a ``result`` with a list of full ``TaskView``s answering *id*."""
    assert frame.get("type") == "result", frame
    assert frame.get("id") == id, frame
    tasks = frame.get("tasks")
    assert isinstance(tasks, list), frame
    for view in tasks:
        problems = task_view_problems(view, f"result {id}")
        assert not problems, problems
    return [dict(view) for view in tasks]

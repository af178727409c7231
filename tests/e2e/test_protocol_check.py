"""The stream checker itself: it must catch what it is there to catch (no server needed)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .protocol_check import ProtocolViolation, check_stream, stream_problems

CHAT = "chat_c"


def view(state: str = "working", **changes: Any) -> dict[str, Any]:
    task = {
        "id": "task_1",
        "title": "Call Alice Moreno",
        "agent": {"id": "outreach-caller", "name": "Outreach caller"},
        "state": state,
        "depth": 1,
        "parent_id": None,
        "chat_id": "chat_t",
        "conversation_id": "conv_1",
        "progress": None,
        "result": "Done." if state in ("completed", "failed", "cancelled") else None,
        "created_at": "2026-01-01T10:00:00.000Z",
        "updated_at": "2026-01-01T10:00:01.000Z",
    }
    task.update(changes)
    return task


def task_event(
    seq: int, task: dict[str, Any], ts: str = "2026-01-01T10:00:01.000Z"
) -> dict[str, Any]:
    return {"seq": seq, "type": "task", "chat_id": CHAT, "ts": ts, "task": task}


def message(seq: int, **changes: Any) -> dict[str, Any]:
    event = {
        "seq": seq,
        "type": "message",
        "chat_id": CHAT,
        "ts": "2026-01-01T10:00:00.123Z",
        "role": "agent",
        "author": {"id": "front-desk", "name": "Front desk"},
        "kind": "reply",
        "text": "Hello",
        "message_id": f"msg_{seq}",
    }
    event.update(changes)
    return event


def good_stream() -> list[dict[str, Any]]:
    return [
        {"type": "welcome", "protocol": 1, "conversation_id": "conv_1", "last_seq": 0},
        message(1, role="user", author={"id": "pat", "name": "You"}),
        {"type": "ack", "id": "c1", "seq": 1},
        task_event(2, view("submitted")),
        task_event(3, view("working")),
        task_event(4, view("working", progress="Dialing"), ts="2026-01-01T10:00:01.100Z"),
        task_event(5, view("working", progress="Ringing"), ts="2026-01-01T10:00:01.700Z"),
        task_event(6, view("completed", progress="Ringing")),
        delta("msg_7", "Hel"),
        delta("msg_7", "lo"),
        message(7, kind="followup", task_id="task_1"),
    ]


def delta(message_id: str, text: str) -> dict[str, Any]:
    return {"type": "message.delta", "message_id": message_id, "chat_id": CHAT, "text": text}


def test_a_good_stream_passes() -> None:
    assert [e["seq"] for e in check_stream(good_stream(), chat_id=CHAT)] == list(range(1, 8))


def spoil(index: int, path: tuple[str, ...], value: Any) -> list[dict[str, Any]]:
    stream = copy.deepcopy(good_stream())
    target = stream[index]
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return stream


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (spoil(3, ("seq",), 3), "seq 3 where 2 was due"),
        (good_stream()[:3] + good_stream()[4:], "seq 3 where 2 was due"),
        (spoil(1, ("ts",), "2026-01-01T10:00:00+02:00"), "ts should be RFC 3339 in UTC"),
        (spoil(1, ("ts",), "yesterday"), "ts should be RFC 3339"),
        (spoil(1, ("author",), {"id": "pat"}), "author"),
        (spoil(1, ("kind",), "shout"), "kind"),
        (spoil(1, ("chat_id",), "chat_other"), "on the stream of"),
        (spoil(4, ("task", "progress"), KeyError), "TaskView lacks 'progress'"),
        (spoil(4, ("task", "depth"), "1"), "TaskView.depth"),
        (spoil(5, ("task", "state"), "submitted"), "moved back from working to submitted"),
        (spoil(4, ("task", "result"), "Half done"), "TaskView.result should be null"),
        (spoil(7, ("task", "result"), None), "TaskView.result should be the outcome"),
        (spoil(5, ("ts",), "2026-01-01T10:00:01.300Z"), "at most twice a second"),
        (spoil(4, ("task", "title"), "Call Bob Tran"), "changed its title"),
        (spoil(1, ("message_id",), KeyError), "message_id should be a non-empty string"),
        (spoil(9, ("text",), "p!"), "deltas do not add up"),
        (spoil(8, ("seq",), 7), "a delta with a seq"),
        (spoil(8, ("chat_id",), "chat_other"), "is not this stream's"),
        (good_stream()[:10], "deltas never followed by their message"),
        (
            [
                *good_stream()[:8],
                task_event(7, view("cancelled")),
                message(8, kind="followup", task_id="task_1"),
            ],
            "changed after its terminal state",
        ),
    ],
)
def test_each_violation_is_caught(stream: list[dict[str, Any]], problem: str) -> None:
    problems = stream_problems(stream, chat_id=CHAT)
    assert any(problem in p for p in problems), problems
    with pytest.raises(ProtocolViolation):
        check_stream(stream, chat_id=CHAT)


def test_a_replay_starts_after_resume_after() -> None:
    resumed = [e for e in good_stream() if "seq" in e and e["type"] != "ack" and e["seq"] > 3]
    assert stream_problems(resumed, after=3, chat_id=CHAT) == []
    assert any("seq 4 where 1 was due" in p for p in stream_problems(resumed, after=0))


def test_voice_needs_speak_on_agent_messages() -> None:
    assert any("speak" in p for p in stream_problems(good_stream(), voice=True))

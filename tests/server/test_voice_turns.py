"""Voice turn-taking without sockets: which updates wait for the caller's pause."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.models import (
    Author,
    Message,
    MessageKind,
    MessageRole,
    StreamEvent,
    Task,
    TaskState,
    TaskUpdate,
)
from server.voice_turns import VoiceTurns

GRACE = 1.5
AGENT = Author("primary", "Switchboard")
PERSON = Author("person-1", "Ada")
AT = datetime(2025, 1, 1, tzinfo=UTC)
_seqs = count(1)


def message(
    kind: MessageKind, text: str = "", role: MessageRole = MessageRole.AGENT
) -> StreamEvent:
    author = AGENT if role is MessageRole.AGENT else PERSON
    body = Message(role, author, kind, text or kind.value, task_id="task-1")
    return StreamEvent(chat_id="chat-1", seq=next(_seqs), ts=AT, body=body)


def task_event() -> StreamEvent:
    task = Task(
        id="task-1",
        workspace_id="ws",
        conversation_id="conv-1",
        chat_id="chat-2",
        title="Prior auth: Ozempic",
        agent=Author("outreach", "Outreach"),
        state=TaskState.WORKING,
        depth=1,
        parent_id=None,
        owner_agent_id="primary",
        person_id="person-1",
        created_at=AT,
        updated_at=AT,
        progress="On hold with the payer",
    )
    return StreamEvent(chat_id="chat-1", seq=next(_seqs), ts=AT, body=TaskUpdate(task))


def progress(text: str = "Still waiting on the pharmacy") -> StreamEvent:
    return message(MessageKind.PROGRESS, text)


def followup(text: str = "Quick update: approved") -> StreamEvent:
    return message(MessageKind.FOLLOWUP, text)


def reply(text: str = "Sure, I'll look into it") -> StreamEvent:
    return message(MessageKind.REPLY, text)


def offer(turns: VoiceTurns, event: StreamEvent, now: float) -> list[StreamEvent]:
    """What reaches the caller when *event* comes in at *now*: the socket's writer."""
    if turns.hold(event, now):
        return []
    turns.delivered(event)
    return [event, *release(turns, now)]


def release(turns: VoiceTurns, now: float) -> list[StreamEvent]:
    """What reaches the caller when the writer wakes at *now* (a timeout or a wake-up)."""
    out = turns.take_held(now)
    for event in out:
        turns.delivered(event)
    return out


@pytest.fixture
def turns() -> VoiceTurns:
    return VoiceTurns(pause_grace=GRACE, voice=True)


def test_a_quiet_caller_hears_updates_at_once(turns: VoiceTurns) -> None:
    update = progress()
    assert offer(turns, update, 0.0) == [update]
    assert turns.timeout(0.0) is None


@pytest.mark.parametrize("update", [progress, followup])
def test_updates_wait_while_the_caller_speaks(
    turns: VoiceTurns, update: Callable[[], StreamEvent]
) -> None:
    event = update()
    turns.speech_started(barged_in=False)
    assert offer(turns, event, 1.0) == []
    assert release(turns, 100.0) == []
    # Held until a speech frame or a reply arrives: nothing to poll for.
    assert turns.timeout(100.0) is None
    turns.speech_stopped(100.0)
    assert release(turns, 100.0 + GRACE - 0.01) == []
    assert release(turns, 100.0 + GRACE) == [event]


def test_updates_wait_while_a_turn_is_unanswered(turns: VoiceTurns) -> None:
    turns.speech_started(barged_in=False)
    turns.speech_stopped(0.0)
    turns.said()
    update = followup()
    assert offer(turns, update, 10.0) == []
    assert release(turns, 60.0) == []
    assert turns.timeout(60.0) is None


def test_held_updates_go_out_after_the_reply_and_the_pause_grace(turns: VoiceTurns) -> None:
    turns.speech_started(barged_in=False)
    update = progress()
    assert offer(turns, update, 0.5) == []
    turns.speech_stopped(1.0)
    turns.said()
    answer = reply()
    # The reply comes inside the grace: it goes out, the update still waits.
    assert offer(turns, answer, 1.2) == [answer]
    assert turns.timeout(1.2) == pytest.approx(1.0 + GRACE - 1.2)
    assert release(turns, 1.2) == []
    assert release(turns, 1.0 + GRACE) == [update]
    assert turns.timeout(1.0 + GRACE) is None


def test_held_updates_go_out_with_a_reply_that_comes_after_the_grace(
    turns: VoiceTurns,
) -> None:
    turns.speech_started(barged_in=False)
    turns.speech_stopped(0.0)
    turns.said()
    update = progress()
    assert offer(turns, update, 0.1) == []
    answer = reply()
    assert offer(turns, answer, 5.0) == [answer, update]


def test_a_barge_in_that_abandons_the_reply_releases_its_turn(turns: VoiceTurns) -> None:
    turns.said()
    update = followup()
    assert offer(turns, update, 0.0) == []
    turns.speech_started(barged_in=True)
    turns.speech_stopped(2.0)
    # No reply will come for the abandoned turn: the pause alone releases the update.
    assert release(turns, 2.0 + GRACE) == [update]


def test_speaking_over_no_reply_keeps_the_turn_pending(turns: VoiceTurns) -> None:
    turns.said()
    turns.speech_started(barged_in=False)
    turns.speech_stopped(0.0)
    update = progress()
    assert offer(turns, update, 0.0) == []
    assert release(turns, 60.0) == []
    answer = reply()
    assert offer(turns, answer, 60.0) == [answer, update]


def test_a_failed_say_leaves_no_turn_pending(turns: VoiceTurns) -> None:
    turns.said()
    turns.say_failed()
    update = progress()
    assert offer(turns, update, 0.0) == [update]


def test_a_notice_counts_as_the_answer_to_a_turn(turns: VoiceTurns) -> None:
    turns.said()
    update = progress()
    assert offer(turns, update, 0.0) == []
    notice = message(MessageKind.NOTICE, "A server restart interrupted 1 background task.")
    assert offer(turns, notice, 1.0) == [notice, update]


def test_each_turn_needs_its_own_answer(turns: VoiceTurns) -> None:
    turns.said()
    turns.said()
    update = progress()
    assert offer(turns, update, 0.0) == []
    first = reply("first")
    assert offer(turns, first, 1.0) == [first]
    second = reply("second")
    assert offer(turns, second, 2.0) == [second, update]


def test_task_events_replies_and_user_messages_are_never_held(turns: VoiceTurns) -> None:
    turns.said()
    turns.speech_started(barged_in=False)
    held = progress()
    assert offer(turns, held, 0.0) == []
    changed = task_event()
    said = message(MessageKind.REPLY, "What are your hours?", role=MessageRole.USER)
    assert offer(turns, changed, 0.1) == [changed]
    assert offer(turns, said, 0.2) == [said]
    assert turns.statistics()["held"] == 1


def test_held_updates_keep_their_order(turns: VoiceTurns) -> None:
    turns.speech_started(barged_in=False)
    first, second, third = progress("one"), followup("two"), progress("three")
    for event in (first, second, third):
        assert offer(turns, event, 0.0) == []
    turns.speech_stopped(1.0)
    assert release(turns, 1.0 + GRACE) == [first, second, third]
    assert release(turns, 1.0 + GRACE) == []


def test_an_update_never_overtakes_held_ones(turns: VoiceTurns) -> None:
    turns.speech_started(barged_in=False)
    first = progress("one")
    assert offer(turns, first, 0.0) == []
    turns.speech_stopped(1.0)
    # The pause has come but the writer has not woken yet: the new one queues behind.
    second = followup("two")
    assert offer(turns, second, 1.0 + GRACE) == []
    assert turns.timeout(1.0 + GRACE) == 0.0
    assert release(turns, 1.0 + GRACE) == [first, second]


def test_a_non_voice_socket_never_holds() -> None:
    turns = VoiceTurns(pause_grace=GRACE)
    turns.said()
    turns.speech_started(barged_in=False)
    for event in (progress(), followup()):
        assert offer(turns, event, 0.0) == [event]
    assert turns.timeout(0.0) is None
    assert turns.statistics()["held"] == 0


_STEPS = st.lists(
    st.sampled_from(["said", "say_failed", "start", "barge_in", "stop", "reply", "update"]),
    max_size=40,
)


@given(_STEPS)
def test_every_update_goes_out_once_in_order(steps: list[str]) -> None:
    turns = VoiceTurns(pause_grace=GRACE, voice=True)
    sent: list[StreamEvent] = []
    updates: list[StreamEvent] = []
    answers: list[StreamEvent] = []
    pending = 0
    for now, step in enumerate(steps):
        if step == "said":
            turns.said()
            pending += 1
        elif step == "say_failed" and pending:
            turns.say_failed()
            pending -= 1
        elif step == "start":
            turns.speech_started(barged_in=False)
        elif step == "barge_in" and pending:
            turns.speech_started(barged_in=True)
            pending -= 1
        elif step == "stop":
            turns.speech_stopped(float(now))
        elif step == "reply" and pending:
            answers.append(reply())
            sent += offer(turns, answers[-1], float(now))
            pending -= 1
        elif step == "update":
            updates.append(progress())
            sent += offer(turns, updates[-1], float(now))
    # The caller falls silent and every turn is answered: nothing stays behind.
    end = float(len(steps))
    turns.speech_stopped(end)
    for _ in range(pending):
        answers.append(reply())
        sent += offer(turns, answers[-1], end)
    sent += release(turns, end + GRACE)
    assert [e for e in sent if e not in answers] == updates
    assert turns.statistics()["held"] == 0

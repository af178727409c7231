"""Faults stay where they happen: a bug fails its turn, or its conversation, never another."""

from __future__ import annotations

import logging

import anyio
import pytest

from agents.models import MessageKind, Principal, Role, TaskState
from agents.primary import TURN_FAILED

from .harness import PERSON, WS, lab

pytestmark = pytest.mark.anyio

OTHER = Principal(WS, "sam", Role.PERSON, "Sam")
SECRET = "Ozempic for Maria Lopez"


def assert_nothing_leaked(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in str(record.__dict__)
        assert record.exc_info is None, "a traceback was logged"


@pytest.mark.parametrize("command", ["crash", "crash group"])
async def test_a_brain_bug_fails_its_turn_and_the_conversation_goes_on(
    command: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with lab() as t:
        other = await t.host.create_conversation(OTHER)
        async with t.host.attach(other) as neighbour:
            await neighbour.say(OTHER, "fan 1 gate")
            await t.wait_for(lambda: len(t.gate.started) == 1)
            await t.runtime.say(PERSON, f"{command} {SECRET}")
            await t.wait_for(lambda: bool(t.messages("notice")))
            assert [m.text for m in t.messages("notice")] == [TURN_FAILED]
            # The same conversation answers its next turn.
            await t.runtime.say(PERSON, "hello")
            await t.wait_for(lambda: any(m.text == "echo: hello" for m in t.messages()))
            assert t.host.live(t.conversation.id) is t.runtime
            # The neighbour's work never noticed.
            t.gate.released.set()
            await t.wait_for(
                lambda: any(
                    getattr(e.body, "kind", None) is MessageKind.FOLLOWUP
                    for e in t.store.events[other.chat_id]
                )
            )
    failed = [r for r in caplog.records if r.getMessage() == "turn failed unexpectedly"]
    assert len(failed) == 1
    assert failed[0].__dict__["conversation_id"] == t.conversation.id
    assert failed[0].__dict__["error"] == "KeyError"
    assert_nothing_leaked(caplog)


async def test_a_bug_in_one_conversation_interrupts_it_and_never_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with lab() as t:
        other = await t.host.create_conversation(OTHER)
        async with t.host.attach(other) as neighbour:
            await neighbour.say(OTHER, "fan 1 gate")
            await t.runtime.say(PERSON, "fan 2 gate")
            await t.wait_for(lambda: len(t.gate.started) == 3)
            broken = t.runtime

            async def bug() -> None:
                raise KeyError(SECRET)

            # A bug anywhere in the conversation's own group (not in a turn, not in a task).
            assert broken._tg is not None
            broken._tg.start_soon(bug)
            with anyio.fail_after(5):
                await broken.wait_stopped()
            mine = [x for x in t.tasks() if x.conversation_id == t.conversation.id]
            assert {x.state for x in mine} == {TaskState.INTERRUPTED}
            assert sorted(t.gate.cleaned) == [0, 1]
            (notice,) = t.messages("notice")
            assert notice.text == (
                "Something went wrong on our side: 2 background tasks were interrupted. "
                "Ask again to start over."
            )
            assert t.host.live(t.conversation.id) is None
            # The neighbour is untouched: its task still runs, and then completes.
            (theirs,) = [x for x in t.tasks() if x.conversation_id == other.id]
            assert t.store.tasks[theirs.id].state is TaskState.WORKING
            assert t.host.live(other.id) is neighbour
            t.gate.released.set()
            await t.wait_for(lambda: t.store.tasks[theirs.id].state is TaskState.COMPLETED)
            # The broken conversation comes back from the store when next needed.
            async with t.host.attach(t.conversation) as again:
                assert again is not broken
                await again.say(PERSON, "still there?")
                await t.wait_for(lambda: any(m.text == "echo: still there?" for m in t.messages()))
    failed = [r for r in caplog.records if r.getMessage() == "conversation failed unexpectedly"]
    assert [r.__dict__["conversation_id"] for r in failed] == [t.conversation.id]
    assert failed[0].__dict__["error"] == "KeyError"
    assert_nothing_leaked(caplog)

"""A sub-agent's chat is a transcript of its work: each tool call, what came back (as a
count and an outcome, never the values), each instruction received and acknowledged,
each child task started, in the order they happened, as they happen."""

from __future__ import annotations

import json

import pytest

from agents.models import (
    Message,
    MessageKind,
    StepAction,
    StreamEvent,
    body_from_json,
    body_to_json,
)

from .harness import PERSON, lab

pytestmark = pytest.mark.anyio


def transcript(events: list[StreamEvent]) -> list[tuple[str, str]]:
    """(kind, what) of each message: the step's action for a step, else its text."""
    found = []
    for event in events:
        body = event.body
        if isinstance(body, Message):
            what = body.step.action.value if body.step is not None else body.text
            found.append((body.kind.value, what))
    return found


def steps(events: list[StreamEvent]) -> list[Message]:
    return [
        e.body for e in events if isinstance(e.body, Message) and e.body.kind is MessageKind.STEP
    ]


async def test_a_tool_call_shows_as_called_then_returned_then_the_agents_words() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        (task,) = t.tasks()
        # Live: the call shows while it runs, before anything has come back.
        assert transcript(t.events(task.chat_id)) == [
            ("reply", "do job 0"),
            ("step", "tool.called"),
        ]
        t.gate.released.set()
        await t.wait_for(lambda: t.store.tasks[task.id].state.is_terminal)
        assert transcript(t.events(task.chat_id)) == [
            ("reply", "do job 0"),
            ("step", "tool.called"),
            ("step", "tool.returned"),
            ("reply", "passed 0"),
        ]
        called, returned = steps(t.events(task.chat_id))
        assert called.step is not None
        assert called.step.tool == "gate"
        assert called.text == "Called gate."
        assert returned.step is not None
        assert returned.step.to_wire() == {
            "action": "tool.returned",
            "tool": "gate",
            "outcome": "ok",
            "fields": 0,
        }
        assert returned.task_id == task.id
        assert returned.author.id == "worker"


async def test_a_failing_tool_shows_its_reason_code_and_nothing_it_raised() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 boom")
        await t.wait_for(lambda: any(x.state.is_terminal for x in t.tasks()))
        (task,) = t.tasks()
        *_, failed = steps(t.events(task.chat_id))
        assert failed.step is not None
        assert failed.step.to_wire() == {
            "action": "tool.returned",
            "tool": "boom",
            "outcome": "failed",
            "reason": "internal",
        }
        assert failed.text == "boom failed (internal)."
        for event in t.events(task.chat_id):
            assert "secret" not in json.dumps(event.to_wire())


async def test_instructions_show_received_then_acknowledged() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        (task,) = t.tasks()
        await t.host.instruct(PERSON, task.id, "call after 3pm", channel="test:probe")
        await t.wait_for(
            lambda: any(w == "noted: call after 3pm" for _, w in transcript(t.events(task.chat_id)))
        )
        assert transcript(t.events(task.chat_id)) == [
            ("reply", "do job 0"),
            ("step", "tool.called"),
            ("reply", "call after 3pm"),
            ("step", "instruction.received"),
            ("step", "instruction.acknowledged"),
            ("reply", "noted: call after 3pm"),
        ]
        t.gate.released.set()
        await t.wait_for(lambda: t.store.tasks[task.id].state.is_terminal)


async def test_a_child_task_shows_as_started_with_its_chat() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "nest 2")
        await t.wait_for(lambda: len(t.tasks()) == 2)
        await t.wait_for(lambda: all(x.state.is_terminal for x in t.tasks()))
        parent = next(x for x in t.tasks() if x.depth == 1)
        child = next(x for x in t.tasks() if x.depth == 2)
        (started,) = [
            m
            for m in steps(t.events(parent.chat_id))
            if m.step and m.step.action is StepAction.TASK_STARTED
        ]
        assert started.step is not None
        assert started.step.to_wire() == {
            "action": "task.started",
            "task_id": child.id,
            "chat_id": child.chat_id,
            "title": "level 2",
        }
        assert started.text == "Started a sub-task: level 2."


async def test_a_step_never_repeats_what_the_call_was_given() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "assign quick pt-dana pt-secret-evan")
        await t.wait_for(lambda: any(x.state.is_terminal for x in t.tasks()))
        (task,) = t.tasks()
        found = steps(t.events(task.chat_id))
        assert [m.step.action.value for m in found if m.step] == ["tool.called", "tool.returned"]
        for message in found:
            assert "pt-" not in json.dumps(message.to_wire())


async def test_steps_survive_the_store() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 quick")
        await t.wait_for(lambda: any(x.state.is_terminal for x in t.tasks()))
        (task,) = t.tasks()
        for message in steps(t.events(task.chat_id)):
            assert body_from_json(body_to_json(message)) == message


async def test_visible_chat_is_the_ownership_check_and_writes_no_audit() -> None:
    from agents.models import Principal, Role

    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 quick")
        await t.wait_for(lambda: any(x.state.is_terminal for x in t.tasks()))
        (task,) = t.tasks()
        before = len(t.audit.entries)
        seen = await t.host.visible_chat(PERSON, task.chat_id)
        assert seen is not None
        assert seen.task is not None
        assert seen.task.id == task.id
        assert (await t.host.visible_chat(PERSON, t.conversation.chat_id)) is not None
        strangers = [
            Principal(PERSON.workspace_id, "mallory", Role.PERSON, "Mallory"),
            Principal("elsewhere", PERSON.id, Role.PERSON, "Pat"),
            Principal(PERSON.workspace_id, "worker", Role.AGENT, "Worker"),
        ]
        for stranger in strangers:
            for chat_id in (task.chat_id, t.conversation.chat_id, "chat_never"):
                assert await t.host.visible_chat(stranger, chat_id) is None, stranger
        assert len(t.audit.entries) == before

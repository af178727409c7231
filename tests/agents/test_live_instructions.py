"""Instructions reach a sub-agent while its tool call is in flight: acknowledged in its
chat when they arrive, and taken in by the tool — the demo payer expedites a filed
request and adds notes to it — through the demo workspace's real runtime."""

from __future__ import annotations

import anyio
import pytest

from agents.models import MessageKind, MessageRole, TaskState
from tests.agents.test_stories import Demo, demo

pytestmark = pytest.mark.anyio


def _chat(d: Demo, chat_id: str) -> list[tuple[MessageRole, MessageKind, str]]:
    from agents.models import Message

    return [
        (e.body.role, e.body.kind, e.body.text)
        for e in d.store.events[chat_id]
        if isinstance(e.body, Message)
    ]


async def test_mark_it_urgent_expedites_the_filed_request_and_is_acknowledged_at_once() -> None:
    async with demo(scale=0.5) as d:
        await d.ask("Start a prior authorization for Ozempic for Dana")
        (task,) = d.tasks()
        assert task.title == "Prior auth: Ozempic for Dana W."
        await d.wait_for(lambda: bool(d.payer.pending))
        answer = await d.ask("mark it urgent")
        assert answer == "Got it — I've passed that on to the Ozempic prior auth for Dana."
        # Acknowledged while the request is still pending, not when the task ends.
        await d.wait_for(
            lambda: any(
                t.startswith("Noted: mark it urgent.") for _, _, t in _chat(d, task.chat_id)
            )
        )
        assert not d.store.tasks[task.id].state.is_terminal
        said = _chat(d, task.chat_id)
        assert (
            MessageRole.AGENT,
            MessageKind.REPLY,
            "Noted: mark it urgent. I've passed that on to the payer with the request.",
        ) in said
        assert (
            MessageRole.AGENT,
            MessageKind.NOTICE,
            "Bluebridge Health has PA-1001 as urgent now (expedited review). "
            "Added to PA-1001's notes: “Mark it urgent.”.",
        ) in said
        assert d.payer.expedited == ["PA-1001"]
        await d.ask("mention she has been on it for two years")
        await d.wait_for(lambda: d.store.tasks[task.id].state.is_terminal, within=30)
        final = d.store.tasks[task.id]
        assert final.state is TaskState.COMPLETED
        assert "expedited at your request" in (final.result or "")
        assert "She has been on it for two years" in (final.result or "")
        (filed,) = d.payer.submitted
        assert filed.urgent
        assert filed.notes == ("Mark it urgent.", "She has been on it for two years.")
        assert "Noted: mention she has been on it for two years." in " ".join(
            t for _, _, t in _chat(d, task.chat_id)
        )
        await anyio.sleep(0.05)
        (followup,) = d.messages(MessageKind.FOLLOWUP)
        assert followup.text.startswith(
            "Quick update on the prior auth you asked about earlier — approved."
        )

"""Rows of the store (server.storage.rows): a commit's events encoded once each, the
same text as encoding each whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agents.models import (
    Author,
    EventBody,
    Message,
    MessageKind,
    MessageRole,
    Step,
    StepAction,
    StepOutcome,
    Task,
    TaskState,
    TaskUpdate,
    body_from_json,
    body_to_json,
)
from server.protocol import encode
from server.storage.rows import numbered_rows

NOW = datetime(2026, 12, 7, 23, 30, 1, 250_000, tzinfo=UTC)
AGENT = Author("prior-auth", "Prior auth")
texts = st.text(max_size=40)  # quotes, backslashes, control characters, astral planes


def _task(progress: str | None, params: dict[str, object]) -> Task:
    return Task(
        id="task_1",
        workspace_id="demo",
        conversation_id="conv_1",
        chat_id="chat_t",
        title="Prior auth for Pat",
        agent=AGENT,
        state=TaskState.WORKING,
        depth=1,
        parent_id=None,
        owner_agent_id="primary",
        person_id="pat",
        created_at=NOW - timedelta(seconds=3),
        updated_at=NOW,
        progress=progress,
        params=params,
    )


messages = st.builds(
    Message,
    role=st.sampled_from(MessageRole),
    author=st.builds(Author, texts, texts),
    kind=st.sampled_from(MessageKind),
    text=texts,
    task_id=st.none() | texts,
    call=st.none() | texts,
    step=st.none()
    | st.builds(
        Step,
        action=st.sampled_from(StepAction),
        tool=st.none() | texts,
        outcome=st.none() | st.sampled_from(StepOutcome),
        fields=st.none() | st.integers(0, 50),
    ),
)
updates = st.builds(
    TaskUpdate,
    st.builds(
        _task,
        st.none() | texts,
        st.dictionaries(texts, st.integers() | texts | st.booleans(), max_size=3),
    ),
)


@given(st.lists(st.tuples(st.sampled_from(["chat_a", 'chat "b"']), messages | updates), max_size=6))
def test_each_event_is_what_encoding_it_whole_gives(items: list[tuple[str, EventBody]]) -> None:
    # The first body again at the end: one body in two events, as a task's update is.
    if items:
        items.append(("chat_t", items[0][1]))
    numbered = [(chat_id, seq, body) for seq, (chat_id, body) in enumerate(items, start=1)]
    events, rows = numbered_rows(numbered, NOW)
    assert [(e.chat_id, e.seq, e.ts, e.body) for e in events] == [
        (chat_id, seq, NOW, body) for chat_id, seq, body in numbered
    ]
    for event, row in zip(events, rows, strict=True):
        assert event.wire == encode(event.to_wire())
        assert row["wire"] == event.wire
        assert row["body"] == encode(body_to_json(event.body))
        assert body_from_json(json.loads(row["body"])) == event.body
        assert (row["chat_id"], row["seq"], row["ts"]) == (event.chat_id, event.seq, NOW)
        assert row["type"] == event.type.value
        assert row["task_id"] == event.task_id

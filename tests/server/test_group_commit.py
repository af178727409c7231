"""The group committer's order (server.storage.group_commit): commits somebody waits
on before background ones, each kind in the order it came, batches of bounded size.

The committer's store is a scripted one here (it records the batches it is given), so
that what waits while a batch is being written is up to the test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import anyio
import pytest

from agents.exceptions import SwitchboardError
from agents.models import Author, Message, MessageKind, MessageRole, StreamEvent, utcnow
from agents.ports import Changes, Fence, NewEvent
from server.storage.group_commit import (
    BACKGROUND_BATCH_EVENTS,
    GATHER_ROUNDS,
    MAX_BATCH,
    GroupCommitter,
)

pytestmark = pytest.mark.anyio

AUTHOR = Author("agent_primary", "Front desk")


def changes(label: str, *, events: int = 1, background: bool = False) -> Changes:
    return Changes(
        events=[
            NewEvent(label, Message(MessageRole.AGENT, AUTHOR, MessageKind.PROGRESS, label))
            for _ in range(events)
        ],
        background=background,
    )


class ScriptedStore:
    """Stores batches as they come; the first one waits until :attr:`release` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.writing = anyio.Event()
        self.release = anyio.Event()

    async def commit_batch(
        self, batch: Sequence[Changes]
    ) -> list[list[StreamEvent] | SwitchboardError]:
        self.batches.append([c.events[0].chat_id for c in batch])
        if len(self.batches) == 1:
            self.writing.set()
            await self.release.wait()
        return [
            [StreamEvent(e.chat_id, n, utcnow(), e.body) for n, e in enumerate(c.events, 1)]
            for c in batch
        ]

    async def commit_one(self, changes: Changes) -> list[StreamEvent]:
        raise AssertionError("the committer runs: every commit goes through a batch")


async def committed_while_busy(later: list[Changes]) -> list[list[str]]:
    """A first commit is being written while *later* ones queue; the batches made."""
    store = ScriptedStore()
    committer = GroupCommitter(store.commit_batch, store.commit_one)
    async with anyio.create_task_group() as tg:
        await tg.start(committer.run)
        async with anyio.create_task_group() as callers:
            callers.start_soon(committer.commit, changes("first"))
            await store.writing.wait()
            for commit in later:
                callers.start_soon(committer.commit, commit)
                await anyio.wait_all_tasks_blocked()  # it waits in its queue
            store.release.set()
        tg.cancel_scope.cancel()
    return store.batches


async def committed_turns_apart(count: int) -> list[list[str]]:
    """The batches of *count* commits to an idle writer, the n-th made n turns of the
    event loop after the first."""
    store = ScriptedStore()
    store.release.set()
    committer = GroupCommitter(store.commit_batch, store.commit_one)

    async def commit_later(n: int) -> None:
        for _ in range(n):
            await anyio.lowlevel.checkpoint()
        await committer.commit(changes(f"say-{n}"))

    async with anyio.create_task_group() as tg:
        await tg.start(committer.run)
        async with anyio.create_task_group() as callers:
            for n in range(count):
                callers.start_soon(commit_later, n)
        tg.cancel_scope.cancel()
    return store.batches


async def test_a_commit_made_while_the_writer_wakes_shares_its_batch() -> None:
    # Written at once, the first would go alone and the second wait for the next batch.
    assert await committed_turns_apart(2) == [["say-0", "say-1"]]


async def test_the_writer_gathers_a_batch_for_a_few_turns_of_the_loop_at_most() -> None:
    count = 4 * GATHER_ROUNDS
    batches = await committed_turns_apart(count)
    assert len(batches) > 1
    assert len(batches[0]) <= GATHER_ROUNDS + 2
    assert [label for batch in batches for label in batch] == [f"say-{n}" for n in range(count)]


async def test_a_commit_somebody_waits_on_goes_before_the_background_queued_ahead() -> None:
    later = [changes(f"progress-{n}", events=3, background=True) for n in range(3)]
    later += [changes("say"), changes("reply")]
    batches = await committed_while_busy(later)
    assert batches == [["first"], ["say", "reply", "progress-0", "progress-1", "progress-2"]]


async def test_background_fills_a_batch_up_to_its_events_then_waits_for_the_next() -> None:
    per = 10
    count = BACKGROUND_BATCH_EVENTS // per + 3
    later = [changes(f"progress-{n}", events=per, background=True) for n in range(count)]
    batches = await committed_while_busy(later)
    taken = -(-BACKGROUND_BATCH_EVENTS // per)  # filled until it holds the budget
    assert batches[1] == [f"progress-{n}" for n in range(taken)]
    assert batches[2] == [f"progress-{n}" for n in range(taken, count)]


async def test_one_background_commit_goes_in_every_batch_however_many_others_wait() -> None:
    later = [changes("say", events=BACKGROUND_BATCH_EVENTS)]
    later += [changes(f"progress-{n}", background=True) for n in range(3)]
    later += [changes(f"reply-{n}", events=BACKGROUND_BATCH_EVENTS) for n in range(2)]
    batches = await committed_while_busy(later)
    # The replies came after the first progress, but nobody waits on that one.
    assert batches[1] == ["say", "reply-0", "reply-1", "progress-0"]
    assert batches[2] == ["progress-1", "progress-2"]


async def test_no_batch_holds_more_than_max_batch_commits() -> None:
    later = [changes(f"say-{n}") for n in range(MAX_BATCH + 5)]
    later += [changes("progress", background=True)]
    batches = await committed_while_busy(later)
    assert [len(b) for b in batches] == [1, MAX_BATCH, 6]
    assert batches[2][-1] == "progress"
    assert [label for b in batches[1:] for label in b if label != "progress"] == [
        f"say-{n}" for n in range(MAX_BATCH + 5)
    ]


async def test_a_conversations_background_commit_is_hurried_when_one_of_its_waits_behind() -> None:
    store = ScriptedStore()
    committer = GroupCommitter(store.commit_batch, store.commit_one)
    big = BACKGROUND_BATCH_EVENTS

    def flush(conversation: str) -> Changes:
        fenced = changes(conversation, events=big, background=True)
        return replace(fenced, fence=Fence(conversation, 1))

    async with anyio.create_task_group() as tg:
        await tg.start(committer.run)
        async with anyio.create_task_group() as callers:
            callers.start_soon(committer.commit, changes("first"))
            await store.writing.wait()
            for conversation in ("conv-a", "conv-b", "conv-c"):
                callers.start_soon(committer.commit, flush(conversation))
                await anyio.wait_all_tasks_blocked()  # it waits in its queue
            committer.hurry("conv-c")
            committer.hurry("conv-z")  # none of its waits: nothing moves
            store.release.set()
        tg.cancel_scope.cancel()
    assert store.batches == [["first"], ["conv-c", "conv-a"], ["conv-b"]]


async def test_a_writer_cancelled_mid_batch_still_answers_that_batch_and_what_waits() -> None:
    store = ScriptedStore()
    committer = GroupCommitter(store.commit_batch, store.commit_one)
    answered: list[str] = []

    async def commit(label: str) -> None:
        (event,) = await committer.commit(changes(label))
        answered.append(event.chat_id)

    async def release_later() -> None:
        await anyio.wait_all_tasks_blocked()
        store.release.set()

    async with anyio.create_task_group() as outer, anyio.create_task_group() as tg:
        await tg.start(committer.run)
        tg.start_soon(commit, "first")
        await store.writing.wait()
        tg.start_soon(commit, "second")
        await anyio.wait_all_tasks_blocked()
        # The node stops while the first batch is being written.
        outer.start_soon(release_later)
        tg.cancel_scope.cancel()
    assert sorted(answered) == ["first", "second"]
    assert store.batches == [["first"], ["second"]]

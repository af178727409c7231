"""The runtime's mechanics, with a scripted brain: delegation, states, cancel, depth."""

from __future__ import annotations

import anyio
import pytest

from agents.conversation import RECENT_TASKS
from agents.exceptions import Conflict, NotFound
from agents.models import (
    Message,
    MessageKind,
    Principal,
    Role,
    StreamEvent,
    TaskState,
    TaskUpdate,
)
from agents.ports import AuditType, Changes

from .harness import PERSON, WS, lab

pytestmark = pytest.mark.anyio

FORWARD = ["submitted", "working", "input_required", "cancelling"]


def assert_forward(states: list[str]) -> None:
    """States only move forward, and nothing follows a terminal state."""
    terminal = {"completed", "failed", "cancelled", "interrupted"}
    seen_terminal = False
    last = -1
    for state in states:
        assert not seen_terminal or state == states[-1], states
        if state in terminal:
            seen_terminal = True
            continue
        rank = FORWARD.index(state)
        assert rank >= last or (state == "working" and last == 2), states
        last = rank


async def test_reply_while_background_work_runs() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        await t.runtime.say(PERSON, "hello there")
        await t.wait_for(lambda: any(m.text == "echo: hello there" for m in t.messages()))
        (task,) = t.tasks()
        assert t.store.tasks[task.id].state is TaskState.WORKING
        t.gate.released.set()
        await t.wait_for(lambda: bool(t.messages("followup")))
        assert t.messages("followup")[0].text.startswith("update job 0=completed:passed 0")
        assert_forward(t.task_states(task.id))
        seqs = [e.seq for e in t.events()]
        assert seqs == list(range(1, len(seqs) + 1))


async def test_a_quick_tool_runs_inline_and_a_slow_one_always_in_the_background() -> None:
    async with lab(turn_budget=1.0) as t:
        await t.runtime.say(PERSON, "use quick")
        await t.wait_for(lambda: any(m.text == "quick 7" for m in t.messages()))
        assert t.tasks() == []
        # The primary agent owns the slow tool too, yet never waits on it in a turn.
        await t.runtime.say(PERSON, "use gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        (task,) = t.tasks()
        assert task.agent.id == "worker"
        await t.runtime.say(PERSON, "still answering?")
        await t.wait_for(lambda: any(m.text == "echo: still answering?" for m in t.messages()))
        assert t.store.tasks[task.id].state is TaskState.WORKING
        t.gate.released.set()
        await t.wait_for(lambda: bool(t.messages("followup")))


async def test_sub_agents_come_only_from_the_workspaces_own_agents() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "borrow outsider")  # defined in another workspace
        await t.wait_for(lambda: any("don't have an agent" in m.text for m in t.messages()))
        assert t.tasks() == []
        await t.runtime.say(PERSON, "borrow worker")
        await t.wait_for(lambda: bool(t.messages("followup")))
        (task,) = t.tasks()
        assert (task.agent.id, task.workspace_id) == ("worker", WS)


async def test_fan_out_rolls_up_once_when_all_are_done() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 3 gate")
        await t.wait_for(lambda: len(t.gate.started) == 3)
        assert t.messages("followup") == []
        t.gate.released.set()
        await t.wait_for(lambda: bool(t.messages("followup")))
        await anyio.sleep(0.1)
        (followup,) = t.messages("followup")
        assert followup.text.startswith("rollup job 0=completed")
        assert "job 2=completed:passed 2" in followup.text


async def test_progress_is_throttled_and_the_latest_is_kept() -> None:
    async with lab(progress_interval=0.1) as t:
        await t.runtime.say(PERSON, "fan 1 chatty")
        await t.wait_for(lambda: bool(t.messages("followup")))
        (task,) = t.tasks()
        progress = [m.text for m in t.messages("progress")]
        # 20 reports over ~0.2 s, at most one per 0.1 s reach the stream.
        assert 1 <= len(progress) <= 5
        assert t.store.tasks[task.id].progress == "step 19"


async def test_the_progress_of_a_conversations_tasks_is_stored_together() -> None:
    # One flusher a conversation: what its tasks report in one interval goes in one
    # commit (events of one commit share their timestamp), and still no task's
    # progress reaches the stream more than once an interval, nor is its latest lost.
    async with lab(progress_interval=0.1) as t:
        # Which commits the store may write after others (background): the flushes only.
        kinds: list[tuple[bool, bool]] = []
        commit = t.store.commit

        async def noting(changes: Changes) -> list[StreamEvent]:
            progress = any(
                isinstance(e.body, Message) and e.body.kind is MessageKind.PROGRESS
                for e in changes.events
            )
            kinds.append((changes.background, progress))
            return await commit(changes)

        t.store.commit = noting  # type: ignore[method-assign]
        await t.runtime.say(PERSON, "fan 3 chatty")
        await t.wait_for(lambda: bool(t.messages("followup")))
        # (a flush merged with another commit of the conversation is not background)
        assert (True, True) in kinds
        assert all(progress for background, progress in kinds if background), kinds
        tasks = t.tasks()
        assert len(tasks) == 3
        assert all(t.store.tasks[task.id].progress == "step 19" for task in tasks)
        by_commit: dict[object, set[str]] = {}
        per_task: dict[str, int] = {}
        for event in t.events():
            body = event.body
            if isinstance(body, TaskUpdate) and body.task.progress is not None:
                by_commit.setdefault(event.ts, set()).add(body.task.id)
                per_task[body.task.id] = per_task.get(body.task.id, 0) + 1
        assert max(len(ids) for ids in by_commit.values()) >= 2
        # 20 reports over ~0.2 s each: at most one per 0.1 s, and the terminal state.
        assert all(1 <= n <= 6 for n in per_task.values()), per_task


async def test_a_say_behind_its_conversations_progress_flush_hurries_it() -> None:
    # The store may hold a background commit back; one of the conversation's own
    # commits queued behind it (the runtime commits one at a time) asks it not to.
    async with lab(progress_interval=0.1) as t:
        held, release = anyio.Event(), anyio.Event()
        hurried: list[str] = []
        commit = t.store.commit

        async def holding(changes: Changes) -> list[StreamEvent]:
            if changes.background and not held.is_set():
                held.set()
                await release.wait()
            return await commit(changes)

        t.store.commit = holding  # type: ignore[method-assign]
        t.store.hurry = hurried.append  # type: ignore[method-assign]
        await t.runtime.say(PERSON, "fan 1 chatty")
        with anyio.fail_after(5):
            await held.wait()
        assert hurried == []
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.runtime.say, PERSON, "still there?")
            await anyio.wait_all_tasks_blocked()
            seen = list(hurried)
            release.set()
        assert seen == [t.runtime.conversation.id]
        await t.wait_for(lambda: any(m.text == "echo: still there?" for m in t.messages()))


async def test_failing_tool_fails_only_its_task() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        await t.runtime.say(PERSON, "fan 1 boom")
        await t.wait_for(lambda: any(x.state is TaskState.FAILED for x in t.tasks()))
        failed = next(x for x in t.tasks() if x.state is TaskState.FAILED)
        assert failed.result == "Worker could not finish: boom failed."
        assert "secret" not in (failed.result or "")
        await t.runtime.say(PERSON, "still there?")
        await t.wait_for(lambda: any(m.text == "echo: still there?" for m in t.messages()))
        t.gate.released.set()
        await t.wait_for(lambda: all(x.state.is_terminal for x in t.tasks()))
        assert sorted(x.state.value for x in t.tasks()) == ["completed", "failed"]


async def test_instructions_to_a_busy_sub_agent_are_all_taken_in_order() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        (task,) = t.tasks()
        for n in range(5):
            await t.host.instruct(PERSON, task.id, f"note {n}", channel="test:probe")
        t.gate.released.set()
        await t.wait_for(lambda: t.store.tasks[task.id].state.is_terminal)
        assert t.store.tasks[task.id].result == "passed 0 [note 0; note 1; note 2; note 3; note 4]"
        with pytest.raises(Conflict):
            await t.host.instruct(PERSON, task.id, "too late", channel="test:probe")


async def test_cancel_runs_clean_up_and_ends_cancelled() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        (task,) = t.tasks()
        accepted = await t.host.cancel(PERSON, task.id, None, channel="test:probe")
        assert accepted.state is TaskState.CANCELLING
        again = await t.host.cancel(PERSON, task.id, None, channel="test:probe")
        assert again.state is TaskState.CANCELLING
        await t.wait_for(lambda: t.store.tasks[task.id].state.is_terminal)
        final = t.store.tasks[task.id]
        assert final.state is TaskState.CANCELLED
        assert final.result == "Cancelled: closed gate 0"
        assert t.gate.cleaned == [0]
        assert t.task_states(task.id)[-2:] == ["cancelling", "cancelled"]
        assert_forward(t.task_states(task.id))


async def test_cancel_racing_completion_leaves_completed() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        (task,) = t.tasks()
        t.gate.released.set()
        await t.wait_for(lambda: t.store.tasks[task.id].state.is_terminal)
        result = await t.host.cancel(PERSON, task.id, None, channel="test:probe")
        assert result.state is TaskState.COMPLETED
        assert t.store.tasks[task.id].state is TaskState.COMPLETED
        assert t.gate.cleaned == []


async def test_cancel_accepted_as_the_sub_agent_finishes_keeps_the_first_terminal_state() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        (task,) = t.tasks()
        # Release and cancel in the same instant: whichever lands first wins, and the
        # stream never shows a state after the terminal one.
        t.gate.released.set()
        await t.host.cancel(PERSON, task.id, None, channel="test:probe")
        await t.wait_for(lambda: t.store.tasks[task.id].state.is_terminal)
        await anyio.sleep(0.05)
        states = t.task_states(task.id)
        assert states[-1] in ("completed", "cancelled")
        assert sum(s in ("completed", "cancelled") for s in states) == 1
        assert_forward(states)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
async def test_depth_cap(depth: int) -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, f"nest {depth}")
        await t.wait_for(lambda: bool(t.messages("followup")))
        tasks = sorted(t.tasks(), key=lambda x: x.depth)
        assert [x.depth for x in tasks] == list(range(1, min(depth, 3) + 1))
        assert all(x.state is TaskState.COMPLETED for x in tasks)
        deepest = tasks[-1]
        notices = [
            e.body.text
            for e in t.events(deepest.chat_id)
            if hasattr(e.body, "kind") and e.body.kind.value == "notice"
        ]
        if depth == 4:
            assert deepest.result == "refused at depth 3"
            assert any("depth_limit" in n for n in notices)
        else:
            assert deepest.result == f"bottom at depth {depth}"
            assert notices == []


async def test_cancelling_a_three_level_tree_goes_deepest_first() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")  # a sibling that must not be touched
        await t.wait_for(lambda: len(t.gate.started) == 1)
        await t.runtime.say(PERSON, "nest 3 wait")
        await t.wait_for(lambda: len(t.gate.started) == 2)  # the depth-3 sub-agent waits
        root = next(x for x in t.tasks() if x.depth == 1 and x.agent.id == "nester")
        accepted = await t.host.cancel(PERSON, root.id, "changed my mind", channel="test:probe")
        assert accepted.state is TaskState.CANCELLING
        tree = [x for x in t.tasks() if x.agent.id == "nester"]
        assert sorted(x.depth for x in tree) == [1, 2, 3]
        said = [getattr(e.body, "text", "") for e in t.events(root.chat_id)]
        assert "Cancel requested by Pat: changed my mind" in said
        # Accepting the cancel shows the whole tree cancelling at once.
        assert {t.store.tasks[x.id].state for x in tree} == {TaskState.CANCELLING}
        await t.wait_for(lambda: all(t.store.tasks[x.id].state.is_terminal for x in tree))
        assert {t.store.tasks[x.id].state for x in tree} == {TaskState.CANCELLED}
        # Every level's clean-up ran, deepest first: the gate at depth 3, then the holds.
        assert t.gate.cleaned == [3]
        assert t.gate.released_holds == [3, 2, 1]
        finished = sorted(tree, key=lambda x: t.store.tasks[x.id].updated_at)
        assert [x.depth for x in finished] == [3, 2, 1]
        deepest = next(x for x in tree if x.depth == 3)
        assert t.store.tasks[deepest.id].result == "Cancelled: closed gate 3 released hold 3"
        sibling = next(x for x in t.tasks() if x.agent.id == "worker")
        assert t.store.tasks[sibling.id].state is TaskState.WORKING
        t.gate.released.set()
        await t.wait_for(lambda: t.store.tasks[sibling.id].state is TaskState.COMPLETED)


async def test_ownership_probes_all_look_like_a_random_id() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        (task,) = t.tasks()
        probes = [
            Principal(WS, "someone-else", Role.PERSON),
            Principal(WS, "worker", Role.AGENT),
            Principal("elsewhere", "pat", Role.PERSON),
            Principal(WS, "bridge", Role.SERVICE, act_for="someone-else"),
        ]
        for who in probes:
            for task_id in (task.id, "task_doesnotexist"):
                with pytest.raises(NotFound) as caught:
                    await t.host.read_task(who, task_id, channel="test:probe")
                assert str(caught.value) == "no such task"
                with pytest.raises(NotFound):
                    await t.host.cancel(who, task_id, None, channel="test:probe")
                with pytest.raises(NotFound):
                    await t.host.instruct(who, task_id, "x", channel="test:probe")
            assert await t.host.list_tasks(who, t.conversation.id, channel="test:probe") == []
        denied = [e for e in t.audit.entries if e.type is AuditType.ACCESS_DENIED]
        # Three refusals per id and probe, and one per empty task list.
        assert len(denied) == len(probes) * 2 * 3 + len(probes)
        # The owners: the person, the bridge acting for them, and the agent that started it.
        for who in (
            PERSON,
            Principal(WS, "bridge", Role.SERVICE, act_for="pat"),
            Principal(WS, "lead", Role.AGENT),
        ):
            assert (await t.host.read_task(who, task.id, channel="test:probe")).id == task.id
        t.gate.released.set()


async def test_reads_fail_closed_when_the_audit_trail_is_down() -> None:
    from agents.exceptions import Unavailable

    async with lab() as t:
        await t.runtime.say(PERSON, "fan 1 quick")
        await t.wait_for(lambda: bool(t.messages("followup")))
        (task,) = t.tasks()
        t.audit.fail = True
        with pytest.raises(Unavailable):
            await t.host.read_task(PERSON, task.id, channel="test:probe")
        await t.runtime.say(PERSON, "are you there")
        await t.wait_for(lambda: any(m.text == "echo: are you there" for m in t.messages()))


async def test_two_hundred_sub_agents_leave_nothing_running() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 200 gate")
        await t.wait_for(lambda: len(t.gate.started) == 200)
        assert t.runtime.live_tasks == 200
        t.gate.released.set()
        await t.wait_for(lambda: bool(t.messages("followup")))
        assert t.runtime.live_tasks == 0
        assert all(x.state is TaskState.COMPLETED for x in t.tasks())
        assert len(t.tasks()) == 200


async def test_stopping_the_node_interrupts_running_tasks_after_clean_up() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 2 gate")
        await t.wait_for(lambda: len(t.gate.started) == 2)
        t.host.stop()
        await t.wait_for(lambda: all(x.state.is_terminal for x in t.tasks()))
        assert {x.state for x in t.tasks()} == {TaskState.INTERRUPTED}
        assert sorted(t.gate.cleaned) == [0, 1]


async def test_an_idle_conversation_leaves_memory_and_comes_back_from_the_store() -> None:
    async with lab(idle_grace=0.2) as t:
        conversation = t.conversation
        await t.runtime.say(PERSON, "fan 1 gate")
        await t.wait_for(lambda: len(t.gate.started) == 1)
        runtime = t.runtime
        t.runtime.detach()  # the socket goes away; the task keeps the conversation live
        await anyio.sleep(0.4)
        assert t.host.live(conversation.id) is runtime
        t.gate.released.set()
        await t.wait_for(lambda: bool(t.messages("followup")))
        await t.wait_for(lambda: t.host.live(conversation.id) is None, within=2)
        async with t.host.attach(conversation) as again:
            assert again is not runtime
            assert [x.id for x in again.visible_tasks(PERSON)] == [x.id for x in t.tasks()]
            await again.say(PERSON, "hello again")
            await t.wait_for(lambda: any(m.text == "echo: hello again" for m in t.messages()))
        t.runtime.attach()  # balance the lab's own detach on the way out


async def test_a_stop_tells_the_person_which_tasks_it_interrupted() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "fan 2 gate")
        await t.wait_for(lambda: len(t.gate.started) == 2)
        t.host.stop()
        await t.wait_for(lambda: bool(t.messages("notice")))
        (notice,) = t.messages("notice")
        assert (
            notice.text
            == "A server restart interrupted 2 background tasks. Ask again to start over."
        )


async def test_ended_work_leaves_a_live_conversations_memory() -> None:
    # A front desk's chat left open all day: what it holds must not grow with what it did.
    async with lab() as t:
        t.gate.released.set()
        rounds = RECENT_TASKS + 15
        for i in range(rounds):
            await t.runtime.say(PERSON, "fan 3 quick" if i % 2 else "nest 3")
            await t.wait_for(lambda i=i: len(t.messages("followup")) == i + 1)
        held = t.runtime.statistics()
        assert held["live_tasks"] == 0
        assert held["known_tasks"] <= RECENT_TASKS
        assert held["batches"] == 0
        # The store keeps every task, and the person's list shows them all.
        assert len(t.tasks()) == rounds * 3
        listed = await t.host.list_tasks(PERSON, t.conversation.id, channel="test")
        assert len(listed) == len(t.tasks())
        # A settled task is still the person's: its status reads, a cancel is a no-op,
        # an instruction is refused as for any ended task.
        oldest = min((x for x in t.tasks() if x.depth == 1), key=lambda x: x.created_at)
        assert t.runtime.known_task(oldest.id) is None
        cancelled = await t.runtime.cancel(PERSON, oldest.id)
        assert cancelled.state is TaskState.COMPLETED
        with pytest.raises(Conflict):
            await t.runtime.instruct(PERSON, oldest.id, "one more thing")
        stranger = Principal(WS, "sam", Role.PERSON, "Sam")
        with pytest.raises(NotFound):
            await t.runtime.cancel(stranger, oldest.id)
        # The newest work is still the brain's to speak of, and only that.
        await t.runtime.say(PERSON, "status")
        await t.wait_for(lambda: "completed" in t.messages()[-1].text)
        assert len(t.messages()[-1].text.split("; ")) == RECENT_TASKS

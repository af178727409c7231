"""The audit sink's group commit (server.audit_sink): entries recorded meanwhile are
appended together, each caller returns once its own are stored, and one refused group
fails alone.

The trail's backend here is the in-memory one, wrapped so that the test decides when
an append may finish and which appends the trail refuses.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio
import anyio.to_thread
import pytest

from agents.exceptions import Unavailable
from agents.models import Principal, Role
from agents.ports import AuditEntry, AuditType
from audit import AuditRecord, AuditTrail, AuditUnavailable, MemoryAuditBackend
from audit.backend import RecordBuilder
from server.audit_sink import MAX_BATCH_RECORDS, TrailAuditSink

pytestmark = pytest.mark.anyio

WS = "ws_clinic"


def entry(actor: str) -> AuditEntry:
    return AuditEntry(
        type=AuditType.PHI_RECORD_VIEWED,
        actor=Principal(WS, actor, Role.PERSON),
        channel="ws:welcome",
        conversation_id="conv_1",
    )


class ScriptedBackend(MemoryAuditBackend):
    """Holds its first append until :attr:`release` is set; refuses every append
    holding a record of an actor in :attr:`refuse`."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[list[str]] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        self.refuse: set[str] = set()

    def append_many(self, builds: Sequence[RecordBuilder]) -> list[AuditRecord]:
        head = self.head()
        actors = []
        for build in builds:
            head = build(head)
            actors.append(head.actor_id)
        self.appends.append(actors)
        if len(self.appends) == 1:
            self.holding.set()
            self.release.wait(10)
        if self.refuse & set(actors):
            raise AuditUnavailable("refused")
        return super().append_many(builds)


def stored_actors(backend: MemoryAuditBackend) -> list[str]:
    return [r.actor_id for r in backend.read(limit=1000)]


async def test_entries_recorded_meanwhile_go_in_one_transaction() -> None:
    backend = ScriptedBackend()
    sink = TrailAuditSink(AuditTrail(backend, node_id="node-a"))
    returned: list[str] = []

    async def record(actor: str) -> None:
        await sink.record(entry(actor))
        # Returned only once stored.
        assert actor in stored_actors(backend)
        returned.append(actor)

    async with anyio.create_task_group() as tg:
        await tg.start(sink.run)
        tg.start_soon(record, "user_first")
        await anyio.to_thread.run_sync(backend.holding.wait)
        async with anyio.create_task_group() as callers:
            for n in range(20):
                callers.start_soon(record, f"user_{n}")
            await anyio.wait_all_tasks_blocked()
            assert returned == []
            backend.release.set()
        tg.cancel_scope.cancel()

    assert backend.appends[0] == ["user_first"]
    assert sorted(backend.appends[1]) == sorted(f"user_{n}" for n in range(20))
    assert len(backend.appends) == 2
    assert sorted(returned) == sorted(["user_first", *(f"user_{n}" for n in range(20))])
    assert sink.batches == 2
    assert sink.written == 21
    assert sink.failed == 0
    assert AuditTrail(backend, node_id="node-a").verify().ok


async def test_a_refused_group_fails_alone() -> None:
    backend = ScriptedBackend()
    backend.refuse = {"user_refused"}
    sink = TrailAuditSink(AuditTrail(backend, node_id="node-a"))
    failed: list[str] = []

    async def record(actors: list[str]) -> None:
        try:
            await sink.record_many([entry(a) for a in actors])
        except Unavailable:
            failed.extend(actors)

    async with anyio.create_task_group() as tg:
        await tg.start(sink.run)
        tg.start_soon(record, ["user_a"])
        await anyio.to_thread.run_sync(backend.holding.wait)
        async with anyio.create_task_group() as callers:
            callers.start_soon(record, ["user_b", "user_c"])
            callers.start_soon(record, ["user_d", "user_refused"])
            callers.start_soon(record, ["user_e"])
            await anyio.wait_all_tasks_blocked()
            backend.release.set()
        tg.cancel_scope.cancel()

    assert failed == ["user_d", "user_refused"]
    # The three groups were tried in one transaction, then each alone; a group's
    # entries stay together and in order.
    assert len(backend.appends) == 5
    assert len(backend.appends[1]) == 5
    assert stored_actors(backend) in (
        ["user_a", "user_b", "user_c", "user_e"],
        ["user_a", "user_e", "user_b", "user_c"],
    )
    assert sink.written == 4
    assert sink.failed == 2


async def test_batches_are_bounded_and_a_stopping_sink_still_appends_what_waits() -> None:
    backend = ScriptedBackend()
    sink = TrailAuditSink(AuditTrail(backend, node_id="node-a"))
    count = MAX_BATCH_RECORDS + 10
    done = 0

    async def record(actor: str) -> None:
        nonlocal done
        await sink.record(entry(actor))
        done += 1

    async with anyio.create_task_group() as tg:
        await tg.start(sink.run)
        tg.start_soon(record, "user_first")
        await anyio.to_thread.run_sync(backend.holding.wait)
        for n in range(count):
            tg.start_soon(record, f"user_{n}")
        await anyio.wait_all_tasks_blocked()
        # The writer is cancelled with entries still waiting: they are appended anyway.
        tg.cancel_scope.cancel()
        backend.release.set()

    assert done == count + 1
    assert [len(a) for a in backend.appends] == [1, MAX_BATCH_RECORDS, 10]
    assert len(stored_actors(backend)) == count + 1


async def test_without_its_writer_each_call_is_its_own_append() -> None:
    backend = ScriptedBackend()
    backend.release.set()
    sink = TrailAuditSink(AuditTrail(backend, node_id="node-a"))
    await sink.record(entry("user_a"))
    await sink.record_many([entry("user_b"), entry("user_c")])
    backend.refuse = {"user_d"}
    with pytest.raises(Unavailable):
        await sink.record(entry("user_d"))
    assert backend.appends == [["user_a"], ["user_b", "user_c"], ["user_d"]]
    assert stored_actors(backend) == ["user_a", "user_b", "user_c"]
    assert sink.written == 3
    assert sink.failed == 1

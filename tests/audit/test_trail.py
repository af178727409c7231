"""The trail and its in-memory backend: one gapless chain, even with concurrent writers."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import pytest

from audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    AuditTrail,
    ChainConflict,
    InvalidAuditField,
    MemoryAuditBackend,
)
from audit.backend import MAX_PAGE

EventFactory = Callable[..., AuditEvent]


def test_records_are_numbered_and_linked_in_order(trail: AuditTrail, event: EventFactory) -> None:
    records = [trail.record(event()) for _ in range(3)]
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert records[1].prev_hash == records[0].hash
    assert records[2].prev_hash == records[1].hash
    assert all(r.computed_hash() == r.hash for r in records)
    assert len({r.id for r in records}) == 3
    assert all(r.id.startswith("aud_") and r.node_id == "node-a" for r in records)
    assert records[0].recorded < records[1].recorded < records[2].recorded
    assert trail.head() == records[2]
    assert trail.verify().ok


def test_an_empty_trail(trail: AuditTrail) -> None:
    assert trail.head() is None
    assert trail.read() == []
    assert trail.verify().ok


def test_eight_threads_append_one_unforked_chain(event: EventFactory) -> None:
    trail = AuditTrail(MemoryAuditBackend(), node_id="node-a")
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for _ in range(50):
                trail.record(event(actor_id=f"user_{n}"))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = list(trail.iter_records(page_size=37))
    assert [r.seq for r in records] == list(range(1, 401))
    assert trail.verify().ok


def test_a_builder_that_does_not_extend_the_head_is_refused(
    trail: AuditTrail, event: EventFactory
) -> None:
    first = trail.record(event())
    backend = MemoryAuditBackend()
    assert backend.append(lambda head: first) == first

    def fork(head: AuditRecord | None) -> AuditRecord:
        return dataclasses.replace(first, id="aud_fork")  # seq 1 again: a fork

    with pytest.raises(ChainConflict, match="seq 2"):
        backend.append(fork)
    assert backend.read() == [first]


def test_nothing_is_stored_when_the_builder_fails(event: EventFactory) -> None:
    trail = AuditTrail(MemoryAuditBackend(), node_id="node-a", new_id=lambda: "not an id")
    with pytest.raises(InvalidAuditField, match="id"):
        trail.record(event())
    assert trail.head() is None


def test_node_id_is_checked_up_front() -> None:
    with pytest.raises(InvalidAuditField, match="node_id"):
        AuditTrail(MemoryAuditBackend(), node_id="node a; rm -rf")


def test_read_pages_and_filters_by_workspace(trail: AuditTrail, chain: list[AuditRecord]) -> None:
    assert [r.seq for r in trail.read(after_seq=1, limit=2)] == [2, 3]
    assert [r.seq for r in trail.read(workspace_id="ws_clinic")] == [1, 3, 5]
    assert [r.seq for r in trail.read(workspace_id="ws_other", after_seq=2)] == [4]
    assert [r.seq for r in trail.iter_records(workspace_id="ws_clinic", page_size=1)] == [1, 3, 5]
    assert trail.read(after_seq=5) == []


@pytest.mark.parametrize(
    "arguments",
    [
        {"after_seq": -1},
        {"limit": 0},
        {"limit": MAX_PAGE + 1},
        {"workspace_id": "ws 1 OR 1=1"},
    ],
)
def test_read_rejects_bad_arguments(trail: AuditTrail, arguments: dict[str, object]) -> None:
    with pytest.raises(InvalidAuditField):
        trail.read(**arguments)  # type: ignore[arg-type]


def test_many_records_are_appended_in_one_step(trail: AuditTrail, event: EventFactory) -> None:
    first = trail.record(event())
    records = trail.record_many([event(actor_id=f"user_{n}") for n in range(3)])
    assert [r.seq for r in records] == [2, 3, 4]
    assert [r.actor_id for r in records] == ["user_0", "user_1", "user_2"]
    assert records[0].prev_hash == first.hash
    assert [b.prev_hash for b in records[1:]] == [a.hash for a in records[:-1]]
    assert trail.read() == [first, *records]
    assert trail.verify().ok
    assert trail.record_many([]) == []


def test_many_records_are_all_stored_or_none(event: EventFactory) -> None:
    ids = iter(["aud_one", "not an id", "aud_three"])
    trail = AuditTrail(MemoryAuditBackend(), node_id="node-a", new_id=lambda: next(ids))
    with pytest.raises(InvalidAuditField, match="id"):
        trail.record_many([event(), event(), event()])
    assert trail.head() is None

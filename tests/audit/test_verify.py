"""verify_chain: an edited, deleted or reordered record is detected, and the first named."""

from __future__ import annotations

import dataclasses

from audit import GENESIS_HASH, AuditRecord, ChainProblem, verify_chain


def rehash(record: AuditRecord, **changes: object) -> AuditRecord:
    """*record* changed by someone who also recomputed its hash."""
    changed = dataclasses.replace(record, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(changed, hash=changed.computed_hash())


def test_an_intact_chain_verifies(chain: list[AuditRecord]) -> None:
    report = verify_chain(chain)
    assert report.ok
    assert report.problem is None
    assert (report.checked, report.last_seq, report.head_hash) == (5, 5, chain[-1].hash)


def test_an_empty_chain_verifies() -> None:
    report = verify_chain([])
    assert report.ok
    assert (report.checked, report.last_seq, report.head_hash) == (0, 0, GENESIS_HASH)


def test_an_edited_record_is_named(chain: list[AuditRecord]) -> None:
    chain[2] = dataclasses.replace(chain[2], channel="ws:task.list")
    report = verify_chain(chain)
    assert not report.ok
    assert report.problem is ChainProblem.EDITED
    assert (report.seq, report.record_id) == (3, chain[2].id)
    assert (report.checked, report.last_seq, report.head_hash) == (2, 2, chain[1].hash)


def test_the_first_of_two_edited_records_is_named(chain: list[AuditRecord]) -> None:
    chain[3] = dataclasses.replace(chain[3], actor_id="user_other")
    chain[1] = dataclasses.replace(chain[1], actor_id="user_other")
    report = verify_chain(chain)
    assert (report.problem, report.seq) == (ChainProblem.EDITED, 2)


def test_a_deleted_record_is_named_missing(chain: list[AuditRecord]) -> None:
    del chain[2]
    report = verify_chain(chain)
    assert report.problem is ChainProblem.MISSING
    assert (report.seq, report.record_id) == (3, None)
    assert "seq 4" in report.detail


def test_a_deleted_first_record_is_missing(chain: list[AuditRecord]) -> None:
    report = verify_chain(chain[1:])
    assert (report.problem, report.seq) == (ChainProblem.MISSING, 1)


def test_a_reordered_pair_is_named(chain: list[AuditRecord]) -> None:
    chain[1], chain[2] = chain[2], chain[1]
    report = verify_chain(chain)
    assert report.problem is ChainProblem.REORDERED
    assert (report.seq, report.record_id) == (3, chain[1].id)


def test_a_record_moved_back_is_reordered(chain: list[AuditRecord]) -> None:
    chain.append(chain.pop(1))
    report = verify_chain(chain)
    # 1, 3, 4, 5, 2: the gap at 2 is not followed by 2, so it reads as missing...
    assert (report.problem, report.seq) == (ChainProblem.MISSING, 2)
    # ...while 1, 2, 4, 3, 5 is a swap.
    chain = [chain[0], chain[4], chain[2], chain[1], chain[3]]
    report = verify_chain(chain)
    assert (report.problem, report.seq) == (ChainProblem.REORDERED, 4)


def test_a_duplicated_record_is_named(chain: list[AuditRecord]) -> None:
    chain.insert(2, chain[1])
    report = verify_chain(chain)
    assert (report.problem, report.seq, report.record_id) == (
        ChainProblem.DUPLICATED,
        2,
        chain[1].id,
    )


def test_a_record_replaced_and_rehashed_breaks_the_next_link(chain: list[AuditRecord]) -> None:
    chain[1] = rehash(chain[1], actor_id="user_forged")
    report = verify_chain(chain)
    assert report.problem is ChainProblem.BROKEN_LINK
    assert (report.seq, report.record_id) == (3, chain[2].id)


def test_a_deletion_hidden_by_renumbering_breaks_the_link(chain: list[AuditRecord]) -> None:
    del chain[2]
    chain[2:] = [rehash(r, seq=r.seq - 1) for r in chain[2:]]
    report = verify_chain(chain)
    assert (report.problem, report.seq) == (ChainProblem.BROKEN_LINK, 3)


def test_a_later_stretch_verifies_from_an_earlier_report(chain: list[AuditRecord]) -> None:
    first = verify_chain(chain[:3])
    assert first.ok
    later = verify_chain(chain[3:], start_seq=first.last_seq + 1, prev_hash=first.head_hash)
    assert later.ok
    assert later.head_hash == chain[-1].hash
    wrong = verify_chain(chain[3:], start_seq=4, prev_hash=chain[0].hash)
    assert (wrong.problem, wrong.seq) == (ChainProblem.BROKEN_LINK, 4)

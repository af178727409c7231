"""Signed checkpoints: a truncated tail, an edited record, a chain rewritten from any
point and a forged checkpoint are each found, and named (audit.checkpoints)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit import (
    GENESIS_HASH,
    AuditRecord,
    AuditTrail,
    ChainProblem,
    MemoryAuditBackend,
    verify_chain,
)
from audit.checkpoints import (
    Checkpoint,
    CheckpointProblem,
    InvalidCheckpoint,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    read_checkpoints,
    sign_head,
    verify_with_checkpoints,
    write_checkpoint,
)

from .conftest import StepClock, make_event

KEY = generate_key()
PUBLIC = KEY.public_key()
SIGNED_AT = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)


def trail_of(count: int) -> list[AuditRecord]:
    trail = AuditTrail(MemoryAuditBackend(), node_id="node-1", clock=StepClock())
    return [trail.record(make_event(task_id=f"task_{n}")) for n in range(count)]


def checkpoints_at(
    records: Sequence[AuditRecord], *seqs: int
) -> list[tuple[str, Checkpoint | InvalidCheckpoint]]:
    """Checkpoints signed with KEY of the heads at *seqs*, an hour apart."""
    return [
        (f"cp:{seq}", sign_head(KEY, records[seq - 1], SIGNED_AT + timedelta(hours=seq)))
        for seq in seqs
    ]


def rewritten_from(records: Sequence[AuditRecord], seq: int) -> list[AuditRecord]:
    """*records* as one who holds the database leaves them: the record at *seq* edited,
    and every hash from there on recomputed and relinked."""
    out = list(records[: seq - 1])
    for record in records[seq - 1 :]:
        changed = record
        if record.seq == seq:
            changed = dataclasses.replace(record, actor_id="user_someone_else")
        prev = out[-1].hash if out else GENESIS_HASH
        changed = dataclasses.replace(changed, prev_hash=prev)
        out.append(dataclasses.replace(changed, hash=changed.computed_hash()))
    return out


def test_an_intact_trail_agrees_with_its_checkpoints_and_may_grow_past_them() -> None:
    records = trail_of(12)
    report = verify_with_checkpoints(records, checkpoints_at(records, 4, 8, 10), PUBLIC)
    assert report.ok, report.detail
    assert (report.matched, report.newest_seq, report.chain.last_seq) == (3, 10, 12)


def test_the_empty_trail_can_be_checkpointed() -> None:
    empty = sign_head(KEY, None, SIGNED_AT)
    assert (empty.seq, empty.hash) == (0, GENESIS_HASH)
    assert verify_with_checkpoints([], [("cp", empty)], PUBLIC).ok
    # And a trail that grew from it still agrees.
    assert verify_with_checkpoints(trail_of(3), [("cp", empty)], PUBLIC).ok


def test_a_truncated_tail_is_found() -> None:
    records = trail_of(12)
    checkpoints = checkpoints_at(records, 4, 10)
    # The chain alone cannot tell: what is left is a valid, shorter chain.
    assert verify_chain(records[:7]).ok
    report = verify_with_checkpoints(records[:7], checkpoints, PUBLIC)
    assert not report.ok
    assert report.problem is CheckpointProblem.TRUNCATED
    assert "ends at seq 7" in report.detail
    assert "seq 10" in report.detail
    assert report.matched == 1


def test_an_edited_record_is_named() -> None:
    records = trail_of(12)
    records[5] = dataclasses.replace(records[5], actor_id="user_someone_else")
    report = verify_with_checkpoints(records, checkpoints_at(records, 4, 10), PUBLIC)
    assert not report.ok
    assert (report.problem, report.chain.seq) == (ChainProblem.EDITED, 6)


@pytest.mark.parametrize("point", [1, 4, 5, 9, 10])
def test_a_chain_rewritten_from_any_point_is_found(point: int) -> None:
    records = trail_of(12)
    checkpoints = checkpoints_at(records, 4, 10)
    forged = rewritten_from(records, point)
    # Every hash recomputed: the chain alone passes.
    assert verify_chain(forged).ok
    report = verify_with_checkpoints(forged, checkpoints, PUBLIC)
    assert not report.ok
    assert report.problem is CheckpointProblem.REWRITTEN
    first_after = 4 if point <= 4 else 10
    assert f"the record at seq {first_after} is not the one signed" in report.detail
    if point > 4:
        assert "rewritten after seq 4, at or before seq 10" in report.detail


def test_a_rewrite_after_the_newest_checkpoint_is_not_found() -> None:
    # The limit of the guarantee, stated as a test: records newer than the newest
    # checkpoint are protected by the chain alone.
    records = trail_of(12)
    report = verify_with_checkpoints(
        rewritten_from(records, 11), checkpoints_at(records, 10), PUBLIC
    )
    assert report.ok


def test_checkpoints_the_key_did_not_sign_are_refused() -> None:
    records = trail_of(6)
    other = generate_key()
    # The attacker's own key, for their own rewritten head.
    forged_head = rewritten_from(records, 2)[-1]
    theirs = [("theirs", sign_head(other, forged_head, SIGNED_AT))]
    report = verify_with_checkpoints(rewritten_from(records, 2), theirs, PUBLIC)
    assert report.problem is CheckpointProblem.BAD_CHECKPOINT
    assert "theirs" in report.detail
    # A genuine checkpoint whose seq or hash was changed afterwards.
    genuine = sign_head(KEY, records[3], SIGNED_AT)
    for changed in (
        dataclasses.replace(genuine, seq=6),
        dataclasses.replace(genuine, hash=records[5].hash),
        dataclasses.replace(genuine, key_id=key_id(other.public_key())),
    ):
        report = verify_with_checkpoints(records, [("edited", changed)], PUBLIC)
        assert report.problem is CheckpointProblem.BAD_CHECKPOINT
    # A line that is not a checkpoint at all.
    report = verify_with_checkpoints(records, [("junk", InvalidCheckpoint("not JSON"))], PUBLIC)
    assert (report.problem, report.ok) == (CheckpointProblem.BAD_CHECKPOINT, False)


@pytest.mark.parametrize(
    "line",
    [
        "{",
        "[]",
        '{"v": 2}',
        '{"v":1,"seq":-1,"hash":"' + "0" * 64 + '","time":"x","key_id":"k","signature":"s"}',
        '{"v":1,"seq":1,"hash":"XYZ","time":"2025-01-01T00:00:00.000000Z","key_id":"k",'
        '"signature":"s"}',
        '{"v":1,"seq":1,"hash":"' + "0" * 64 + '","time":"yesterday","key_id":"k","signature":"s"}',
    ],
)
def test_malformed_checkpoints_do_not_parse(line: str) -> None:
    with pytest.raises(InvalidCheckpoint):
        Checkpoint.from_json(line)


def written(target: Path, checkpoints: Sequence[Checkpoint]) -> Iterator[Checkpoint]:
    for checkpoint in checkpoints:
        write_checkpoint(checkpoint, target)
    for _, read in read_checkpoints(target):
        assert isinstance(read, Checkpoint)
        yield read


def test_checkpoints_round_trip_through_a_directory_and_a_file(tmp_path: Path) -> None:
    records = trail_of(5)
    made = [sign_head(KEY, records[n], SIGNED_AT + timedelta(minutes=n)) for n in range(5)]
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    assert sorted(written(folder, made), key=lambda c: c.seq) == made
    assert len(list(folder.iterdir())) == 5
    assert list(written(tmp_path / "checkpoints.jsonl", made)) == made
    assert len((tmp_path / "checkpoints.jsonl").read_text().splitlines()) == 5


def test_keys_round_trip_through_pem_files(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_bytes(private_key_pem(KEY))
    (tmp_path / "key.pub").write_bytes(public_key_pem(PUBLIC))
    assert key_id(load_private_key(tmp_path / "key.pem").public_key()) == key_id(PUBLIC)
    assert key_id(load_public_key(tmp_path / "key.pub")) == key_id(PUBLIC)
    # A private key file serves as the public key too.
    assert key_id(load_public_key(tmp_path / "key.pem")) == key_id(PUBLIC)
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(InvalidCheckpoint):
        load_private_key(tmp_path / "junk.pem")
    with pytest.raises(InvalidCheckpoint):
        load_public_key(tmp_path / "missing.pub")

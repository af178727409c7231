"""Whoever holds the database against signed checkpoints, on real SQLite and PostgreSQL.

The attacker may drop the append-only triggers (as the table's owner can), delete the
newest records, edit one, or rewrite the chain from any record on with every hash
recomputed. ``switchboard audit verify`` alone passes the truncated and the rewritten
trails; with ``--checkpoints`` it fails each, naming what was done. A checkpoint the
attacker signs with a key of their own is refused.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import Engine, text

from audit import (
    GENESIS_HASH,
    ActorKind,
    AuditEvent,
    AuditReason,
    AuditRecord,
    AuditTrail,
    AuditType,
)
from audit.checkpoints import (
    Checkpoint,
    generate_key,
    private_key_pem,
    read_checkpoints,
    sign_head,
    write_checkpoint,
)
from server.audit_store import SqlAuditBackend, create_schema
from server.cli import main
from server.storage.engine import create_engine_for
from tests.e2e.conftest import ServerProcess, headers, token

from .support import random_id

SECRET = "checkpoint-test-secret-that-is-long-enough"


@dataclasses.dataclass
class Trail:
    engine: Engine
    key: Path
    checkpoints: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def backend(self) -> SqlAuditBackend:
        return SqlAuditBackend(self.engine)

    def write(self, count: int) -> None:
        trail = AuditTrail(self.backend, node_id="node-1")
        for n in range(count):
            trail.record(
                AuditEvent(
                    type=AuditType.PHI_RECORD_VIEWED,
                    workspace_id="ws_clinic",
                    actor_kind=ActorKind.PERSON,
                    actor_id="person_ada",
                    channel="http:GET /v1/tasks/{task_id}",
                    reason=AuditReason.OWNER,
                    task_id=f"task_{n}",
                )
            )

    def checkpoint(self) -> None:
        assert (
            main(["audit", "checkpoint", "--key", str(self.key), "--to", str(self.checkpoints)])
            == 0
        )
        self.capsys.readouterr()

    def verify(self, *, with_checkpoints: bool = True) -> tuple[int, str]:
        argv = ["audit", "verify"]
        if with_checkpoints:
            argv += ["--checkpoints", str(self.checkpoints), "--public-key", f"{self.key}.pub"]
        code = main(argv)
        return code, self.capsys.readouterr().out

    def records(self) -> list[AuditRecord]:
        return self.backend.read(after_seq=0, limit=1000)

    # -- what the database's owner can do ------------------------------------------

    def drop_guard(self) -> None:
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                connection.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
            else:
                for verb in ("update", "delete"):
                    connection.execute(text(f"DROP TRIGGER audit_events_append_only_{verb}"))

    def execute(self, sql: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(sql))

    def rewrite_from(self, seq: int) -> None:
        """Edit the record at *seq*, and recompute and relink every hash from there on."""
        kept = self.records()
        self.execute(f"DELETE FROM audit_events WHERE seq >= {seq}")
        prev = kept[seq - 2].hash if seq > 1 else GENESIS_HASH
        for record in kept[seq - 1 :]:
            if record.seq == seq:
                record = dataclasses.replace(record, actor_id="person_mallory")
            record = dataclasses.replace(record, prev_hash=prev)
            record = dataclasses.replace(record, hash=record.computed_hash())
            self.backend.append(lambda _head, made=record: made)
            prev = record.hash


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def trail(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Trail]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SWITCHBOARD_SECRET", SECRET)
    for name in ("SIGNING_KEY", "PUBLIC_KEY", "CHECKPOINTS", "CHECKPOINT_EVERY_SECONDS"):
        monkeypatch.delenv(f"SWITCHBOARD_AUDIT_{name}", raising=False)
    engine = create_engine_for(url)
    create_schema(engine)
    # The key lives with the operator, not with the database.
    key = tmp_path / "operator" / "signing.pem"
    key.parent.mkdir()
    assert main(["audit", "keygen", "--private-key", str(key)]) == 0
    checkpoints = tmp_path / "operator" / "checkpoints"
    checkpoints.mkdir()
    capsys.readouterr()
    trail = Trail(engine, key, checkpoints, capsys)
    # Twelve records, checkpointed after the 4th, the 8th and the 12th.
    for _ in range(3):
        trail.write(4)
        trail.checkpoint()
    try:
        yield trail
    finally:
        engine.dispose()


def test_an_untouched_trail_passes(trail: Trail) -> None:
    trail.write(3)
    code, out = trail.verify()
    assert code == 0, out
    assert "15 records" in out
    assert "3 checkpoints agree, the newest at seq 12" in out


def test_a_truncated_tail_fails(trail: Trail) -> None:
    trail.drop_guard()
    trail.execute("DELETE FROM audit_events WHERE seq > 9")
    # What the chain alone says: all is well.
    assert trail.verify(with_checkpoints=False)[0] == 0
    code, out = trail.verify()
    assert code == 1
    assert "BROKEN: truncated" in out
    assert "ends at seq 9" in out
    assert "seq 12" in out


def test_an_edited_record_fails(trail: Trail) -> None:
    trail.drop_guard()
    trail.execute("UPDATE audit_events SET actor_id = 'person_mallory' WHERE seq = 6")
    code, out = trail.verify()
    assert code == 1
    assert "BROKEN at seq 6" in out
    assert "edited" in out


@pytest.mark.parametrize("point", [1, 6, 12])
def test_a_chain_rewritten_from_any_point_fails(trail: Trail, point: int) -> None:
    trail.drop_guard()
    trail.rewrite_from(point)
    assert trail.records()[point - 1].actor_id == "person_mallory"
    assert trail.verify(with_checkpoints=False)[0] == 0
    code, out = trail.verify()
    assert code == 1
    assert "BROKEN: rewritten" in out
    first_after = next(seq for seq in (4, 8, 12) if seq >= point)
    assert f"the record at seq {first_after} is not the one signed" in out


def test_a_rewritten_and_shortened_chain_fails(trail: Trail) -> None:
    # Records 5 to 12 deleted, and ten others written in their place.
    trail.drop_guard()
    trail.execute("DELETE FROM audit_events WHERE seq > 4")
    trail.write(10)
    code, out = trail.verify()
    assert code == 1
    assert "BROKEN: rewritten" in out
    assert "the record at seq 8 is not the one signed" in out


def test_a_checkpoint_of_the_attackers_own_key_is_refused(trail: Trail) -> None:
    trail.drop_guard()
    trail.rewrite_from(2)
    # They replace every checkpoint with one of their own for the forged head.
    for old in trail.checkpoints.iterdir():
        old.unlink()
    forged = sign_head(generate_key(), trail.backend.head(), datetime.now(UTC))
    write_checkpoint(forged, trail.checkpoints)
    code, out = trail.verify()
    assert code == 1
    assert "BROKEN: bad_checkpoint" in out
    # Editing a genuine checkpoint to the forged head is refused the same way.
    for old in trail.checkpoints.iterdir():
        old.unlink()
    assert (
        main(["audit", "checkpoint", "--key", str(trail.key), "--to", str(trail.checkpoints)]) == 0
    )
    (only,) = trail.checkpoints.iterdir()
    body = json.loads(only.read_text())
    body["seq"] = 99
    only.write_text(json.dumps(body) + "\n")
    code, out = trail.verify()
    assert (code, "BROKEN: bad_checkpoint" in out) == (1, True)


@pytest.mark.e2e
@pytest.mark.anyio
async def test_the_server_checkpoints_on_a_schedule_and_when_it_stops(
    server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    key = tmp_path / "signing.pem"
    key.write_bytes(private_key_pem(generate_key()))
    kept = tmp_path / "checkpoints.jsonl"
    server: ServerProcess = server_factory(
        SWITCHBOARD_AUDIT_SIGNING_KEY=str(key),
        SWITCHBOARD_AUDIT_CHECKPOINTS=str(kept),
        SWITCHBOARD_AUDIT_CHECKPOINT_EVERY_SECONDS="0.3",
    )
    engine = create_engine_for(server.database_url)
    backend = SqlAuditBackend(engine)

    def newest() -> int:
        found = [c for _, c in read_checkpoints(kept) if isinstance(c, Checkpoint)]
        return max((c.seq for c in found), default=-1)

    try:
        # Refusals are audited: each look for an unknown task writes a record.
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
            for _ in range(3):
                answer = await client.get(
                    f"/v1/tasks/{random_id('task')}", headers=headers(token())
                )
                assert answer.status_code == 404
        head = backend.head()
        assert head is not None
        with anyio.fail_after(10):
            while newest() < head.seq:  # noqa: ASYNC110 - polling a file the server writes
                await anyio.sleep(0.1)
        # Written while stopping, after the last period: the final checkpoint has it.
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
            await client.get(f"/v1/tasks/{random_id('task')}", headers=headers(token()))
        server.stop(signal.SIGTERM)
        final = backend.head()
        assert final is not None
        assert newest() == final.seq
        monkeypatch.setenv("DATABASE_URL", server.database_url)
        capsys.readouterr()
        verify = ["audit", "verify", "--checkpoints", str(kept), "--public-key", str(key)]
        assert main(verify) == 0
        # And the tail it vouches for cannot go unnoticed.
        with engine.begin() as connection:
            connection.execute(text("DROP TRIGGER audit_events_append_only_delete"))
            connection.execute(text(f"DELETE FROM audit_events WHERE seq = {final.seq}"))
        assert main(verify) == 1
        assert "BROKEN: truncated" in capsys.readouterr().out
    finally:
        engine.dispose()

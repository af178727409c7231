"""SqlAuditBackend: the audit backend contract on SQLite and PostgreSQL.

Each test gets its own table (dropped afterwards: triggers do not fire on DROP TABLE),
so reruns and other test modules sharing the database do not interfere. PostgreSQL
tests skip when it is unreachable and fail instead when ``CI=true``.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from audit import (
    ActorKind,
    AuditError,
    AuditEvent,
    AuditReason,
    AuditRecord,
    AuditTrail,
    AuditType,
    AuditUnavailable,
    ChainConflict,
    ChainProblem,
    InvalidAuditField,
)
from server.audit_store import SqlAuditBackend, create_schema
from server.storage.engine import create_engine_for

THREADS = 8
PER_THREAD = 25


def make_event(**overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "type": AuditType.PHI_RECORD_VIEWED,
        "workspace_id": "ws_clinic",
        "actor_kind": ActorKind.AGENT,
        "actor_id": "agent_outreach",
        "on_behalf_of": ("person_ada", "agent_primary"),
        "channel": "http:GET /v1/tasks/{task_id}",
        "reason": AuditReason.OWNER,
        "task_id": "task_Zx81-q",
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


@dataclasses.dataclass
class Store:
    engine: Engine
    table: str

    def backend(self, **options: float) -> SqlAuditBackend:
        return SqlAuditBackend(self.engine, table_name=self.table, **options)

    def trail(self, **options: float) -> AuditTrail:
        return AuditTrail(self.backend(**options), node_id="node-1.test")

    def execute(self, sql: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(sql.format(table=self.table)))


def open_store(engine: Engine) -> Iterator[Store]:
    table = f"audit_t_{secrets.token_hex(5)}"
    create_schema(engine, table_name=table)
    try:
        yield Store(engine, table)
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-server-engine",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        # A bare engine: the driver's own transaction handling, no hooks.
        engine = create_engine(
            f"sqlite:///{tmp_path / 'audit.db'}", connect_args={"check_same_thread": False}
        )
    elif request.param == "sqlite-server-engine":
        # The server's engine: WAL, busy_timeout, and a hook that issues BEGIN itself.
        engine = create_engine_for(f"sqlite:///{tmp_path / 'data' / 'audit.db'}")
    else:
        engine = create_engine(request.getfixturevalue("postgres_url"))
    yield from open_store(engine)


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    yield from open_store(create_engine(postgres_url))


# -- the contract -------------------------------------------------------------------


def test_an_empty_trail(store: Store) -> None:
    trail = store.trail()
    assert trail.head() is None
    assert trail.read() == []
    assert trail.verify().ok


def test_records_come_back_exactly_as_written(store: Store) -> None:
    trail = store.trail()
    written = [
        trail.record(make_event()),
        trail.record(
            make_event(
                type=AuditType.ACCESS_DENIED,
                reason=AuditReason.NOT_OWNER,
                actor_kind=ActorKind.PERSON,
                actor_id="person_bob",
                on_behalf_of=(),
                channel="ws:task.status",
                task_id=None,
                chat_id="chat_9",
                request_id="req_1",
            )
        ),
    ]
    read = trail.read()
    assert read == written
    assert read[0].recorded.tzinfo is UTC
    assert all(r.computed_hash() == r.hash for r in read)
    assert trail.head() == written[-1]
    assert trail.verify().ok


def test_recorded_times_round_trip_to_the_microsecond(store: Store) -> None:
    when = datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    trail = AuditTrail(store.backend(), node_id="node-1.test", clock=lambda: when)
    record = trail.record(make_event())
    assert trail.read()[0].recorded == when == record.recorded
    assert trail.verify().ok


def test_read_pages_and_filters_by_workspace(store: Store) -> None:
    trail = store.trail()
    for n in range(6):
        trail.record(make_event(workspace_id="ws_a" if n % 3 == 0 else "ws_b"))
    assert [r.seq for r in trail.read(after_seq=2, limit=3)] == [3, 4, 5]
    assert [r.seq for r in trail.read(workspace_id="ws_a")] == [1, 4]
    assert [r.seq for r in trail.read(workspace_id="ws_b", after_seq=3)] == [5, 6]
    assert [r.seq for r in trail.iter_records(page_size=4)] == [1, 2, 3, 4, 5, 6]


def test_concurrent_writers_make_one_gapless_chain(store: Store) -> None:
    assert_concurrent_writers_make_one_chain(store)


def assert_concurrent_writers_make_one_chain(store: Store) -> None:
    # One backend per thread: only the database's lock stands between them, as it does
    # between nodes.
    trails = [store.trail() for _ in range(THREADS)]
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for _ in range(PER_THREAD):
                trails[n].record(make_event(actor_id=f"agent_{n}"))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = list(trails[0].iter_records(page_size=64))
    assert [r.seq for r in records] == list(range(1, THREADS * PER_THREAD + 1))
    report = trails[0].verify()
    assert report.ok, report.detail
    assert report.checked == THREADS * PER_THREAD


def test_a_failing_builder_stores_nothing(store: Store) -> None:
    backend = store.backend()
    trail = AuditTrail(backend, node_id="node-1.test")
    first = trail.record(make_event())

    def broken(head: AuditRecord | None) -> AuditRecord:
        raise InvalidAuditField("channel must match")

    with pytest.raises(InvalidAuditField):
        backend.append(broken)
    with pytest.raises(ChainConflict):
        backend.append(lambda head: dataclasses.replace(first, id="aud_fork"))
    assert trail.read() == [first]
    assert trail.record(make_event()).seq == 2


def test_many_records_go_in_one_transaction_or_none(store: Store) -> None:
    trail = store.trail()
    first = trail.record(make_event())
    records = trail.record_many([make_event(actor_id=f"user_{n}") for n in range(50)])
    assert [r.seq for r in records] == list(range(2, 52))
    assert trail.read(limit=100) == [first, *records]

    backend = store.backend()

    def broken(head: AuditRecord | None) -> AuditRecord:
        raise InvalidAuditField("channel must match")

    builds = [lambda head: dataclasses.replace(records[-1], seq=52, prev_hash=records[-1].hash)]
    with pytest.raises(InvalidAuditField):
        backend.append_many([*builds, broken])
    assert trail.head() == records[-1]
    assert trail.verify().ok


def test_create_schema_is_idempotent(store: Store) -> None:
    trail = store.trail()
    trail.record(make_event())
    create_schema(store.engine, table_name=store.table)
    assert trail.record(make_event()).seq == 2
    assert trail.verify().ok


@pytest.mark.parametrize(
    "sql",
    ["UPDATE {table} SET actor_id = 'person_eve'", "DELETE FROM {table}"],
)
def test_updates_and_deletes_are_refused(store: Store, sql: str) -> None:
    trail = store.trail()
    record = trail.record(make_event())
    with pytest.raises(DBAPIError, match="append-only"):
        store.execute(sql)
    assert trail.read() == [record]


def test_seq_is_unique_even_past_the_backend(store: Store) -> None:
    trail = store.trail()
    trail.record(make_event())
    with pytest.raises(IntegrityError):
        store.execute(
            "INSERT INTO {table} SELECT 'aud_dup', seq, workspace_id, type, action, recorded,"
            " outcome, reason, actor_kind, actor_id, on_behalf_of, channel, node_id, task_id,"
            " chat_id, conversation_id, request_id, prev_hash, hash FROM {table}"
        )


def test_appends_fail_closed_when_queued_too_long(store: Store) -> None:
    backend = store.backend(lock_timeout=0.2)
    trail = AuditTrail(backend, node_id="node-1.test")
    inside = threading.Event()
    release = threading.Event()
    outcomes: list[BaseException] = []

    def stuck(head: AuditRecord | None) -> AuditRecord:
        inside.set()
        release.wait(10)
        raise InvalidAuditField("seq must be an int")

    def append_stuck() -> None:
        try:
            backend.append(stuck)
        except BaseException as exc:  # checked below
            outcomes.append(exc)

    blocker = threading.Thread(target=append_stuck)
    blocker.start()
    try:
        assert inside.wait(10)
        with pytest.raises(AuditUnavailable, match="timeout"):
            trail.record(make_event())
    finally:
        release.set()
        blocker.join()
    assert [type(exc) for exc in outcomes] == [InvalidAuditField]
    assert trail.record(make_event()).seq == 1


# -- SQLite: what gets past the triggers is still detected ---------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'audit.db'}")
    yield from open_store(engine)


def drop_triggers(store: Store) -> None:
    for verb in ("update", "delete"):
        store.execute(f"DROP TRIGGER {{table}}_append_only_{verb}")


def test_an_edit_behind_the_triggers_is_named_by_verify(sqlite_store: Store) -> None:
    trail = sqlite_store.trail()
    for _ in range(4):
        trail.record(make_event())
    drop_triggers(sqlite_store)
    sqlite_store.execute("UPDATE {table} SET actor_id = 'person_eve' WHERE seq = 3")
    report = trail.verify()
    assert (report.problem, report.seq) == (ChainProblem.EDITED, 3)


def test_a_deletion_behind_the_triggers_is_named_by_verify(sqlite_store: Store) -> None:
    trail = sqlite_store.trail()
    for _ in range(4):
        trail.record(make_event())
    drop_triggers(sqlite_store)
    sqlite_store.execute("DELETE FROM {table} WHERE seq = 2")
    report = trail.verify()
    assert (report.problem, report.seq, report.record_id) == (ChainProblem.MISSING, 2, None)


def test_free_text_smuggled_into_a_row_is_refused_on_read(sqlite_store: Store) -> None:
    trail = sqlite_store.trail()
    trail.record(make_event())
    drop_triggers(sqlite_store)
    sqlite_store.execute("UPDATE {table} SET channel = 'ws:Jane Doe, DOB 1980-04-02'")
    with pytest.raises(InvalidAuditField, match="seq 1: channel") as caught:
        trail.read()
    assert "Jane" not in str(caught.value)


def test_an_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'audit.db'}")
    backend = SqlAuditBackend(engine)
    trail = AuditTrail(backend, node_id="node-1.test")
    with pytest.raises(AuditUnavailable):
        create_schema(engine)
    with pytest.raises(AuditUnavailable):
        trail.record(make_event())
    with pytest.raises(AuditUnavailable):
        trail.read()
    with pytest.raises(AuditUnavailable):
        trail.head()
    engine.dispose()


def test_table_names_are_checked(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    with pytest.raises(AuditError, match="table names"):
        SqlAuditBackend(engine, table_name='audit"; DROP TABLE tasks; --')
    with pytest.raises(AuditError, match="table names"):
        create_schema(engine, table_name="Audit Events")
    engine.dispose()


# -- PostgreSQL only ----------------------------------------------------------------


@pytest.mark.postgres
def test_truncate_is_refused(pg_store: Store) -> None:
    trail = pg_store.trail()
    trail.record(make_event())
    with pytest.raises(DBAPIError, match="append-only: TRUNCATE"):
        pg_store.execute("TRUNCATE {table}")
    assert len(trail.read()) == 1


@pytest.mark.postgres
def test_an_update_matching_no_row_is_refused(pg_store: Store) -> None:
    with pytest.raises(DBAPIError, match="append-only: UPDATE"):
        pg_store.execute("UPDATE {table} SET actor_id = 'x' WHERE seq < 0")


@pytest.mark.postgres
def test_the_trigger_is_installed_once(pg_store: Store) -> None:
    create_schema(pg_store.engine, table_name=pg_store.table)
    with pg_store.engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass)"),
            {"t": pg_store.table},
        ).scalar()
    assert count == 1


@pytest.mark.postgres
def test_repeatable_read_engines_still_append_in_order(postgres_url: str) -> None:
    # Under REPEATABLE READ the head would be read from a snapshot older than the lock.
    engine = create_engine(postgres_url, isolation_level="REPEATABLE READ")
    for store in open_store(engine):
        assert_concurrent_writers_make_one_chain(store)

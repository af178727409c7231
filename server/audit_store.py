"""The audit trail in SQL: an :class:`~audit.backend.AuditBackend` on SQLite or PostgreSQL.

The table ``audit_events`` has one column per field of :class:`~audit.record.AuditRecord`
and lives in its own ``MetaData``: it is created by :func:`create_schema` here, not with
the store's tables.

Appends are serialized, so concurrent writers on any number of nodes never fork the
chain: each reads the head, builds the next record and inserts it inside one
transaction that first takes

- on PostgreSQL, a transaction-scoped advisory lock (one key per audit table);
- on SQLite, the database's write lock (``BEGIN IMMEDIATE``), before its first read;

and, in this process, a lock that keeps the node's writers from queueing on pool
connections. A unique constraint on ``seq`` is the last line of defence.

The table is append-only: triggers refuse ``UPDATE``, ``DELETE`` and (PostgreSQL)
``TRUNCATE``. They stop mistakes and the application role, not the table's owner, who
can drop them; run the server as a role that does not own the table, and keep
``verify`` reports elsewhere, so that what gets past the triggers is still detected.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import SQLAlchemyError

from audit.backend import RecordBuilder, build_chain, check_read_arguments
from audit.exceptions import AuditError, AuditUnavailable, InvalidAuditField
from audit.record import (
    ActorKind,
    AuditAction,
    AuditOutcome,
    AuditReason,
    AuditRecord,
    AuditType,
)

DEFAULT_TABLE = "audit_events"

#: How long an append waits for this process's other appends before failing closed.
DEFAULT_LOCK_TIMEOUT_S = 10.0

# Held by create_schema on PostgreSQL: two nodes creating the trigger function at once
# would otherwise fail with "tuple concurrently updated".
_SCHEMA_LOCK_KEY = 0x4155_4454_0000_0000  # "AUDT" << 32
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_GUARD_FUNCTION = "switchboard_audit_append_only"


def audit_table(metadata: MetaData, name: str = DEFAULT_TABLE) -> Table:
    """The audit table called *name*, defined in *metadata*."""
    return Table(
        name,
        metadata,
        Column("id", String(100), primary_key=True),
        Column("seq", BigInteger, nullable=False),
        Column("workspace_id", String(100), nullable=False),
        Column("type", String(32), nullable=False),
        Column("action", String(1), nullable=False),
        Column("recorded", DateTime(timezone=True), nullable=False),
        Column("outcome", String(2), nullable=False),
        Column("reason", String(32), nullable=False),
        Column("actor_kind", String(16), nullable=False),
        Column("actor_id", String(100), nullable=False),
        # A JSON array of ids, as text: SQLite and PostgreSQL hold the same bytes.
        Column("on_behalf_of", Text, nullable=False),
        Column("channel", String(200), nullable=False),
        Column("node_id", String(100), nullable=False),
        Column("task_id", String(100)),
        Column("chat_id", String(100)),
        Column("conversation_id", String(100)),
        Column("request_id", String(100)),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        UniqueConstraint("seq", name=f"{name}_seq_key"),
        CheckConstraint("seq >= 1", name=f"{name}_seq_positive"),
        Index(f"{name}_workspace_seq", "workspace_id", "seq"),
    )


AUDIT_METADATA = MetaData()
AUDIT_EVENTS = audit_table(AUDIT_METADATA)


def create_schema(engine: Engine, *, table_name: str = DEFAULT_TABLE) -> None:
    """Create the audit table, its indexes and its append-only triggers if missing.

    Safe to run on every start and from several nodes at once. Raises
    :class:`AuditUnavailable` if the database refuses, :class:`AuditError` for a bad
    *table_name*.
    """
    table = _table_for(table_name)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
            table.create(connection, checkfirst=True)
            for statement in _guard_statements(connection.dialect.name, table_name):
                # no_parameters: the DDL holds '%' (RAISE's placeholders), not bind markers.
                connection.execution_options(no_parameters=True).exec_driver_sql(statement)
    except SQLAlchemyError as exc:
        raise AuditUnavailable(f"cannot create the audit table: {type(exc).__name__}") from exc


class SqlAuditBackend:
    """An :class:`~audit.backend.AuditBackend` in a SQLite or PostgreSQL table.

    Call :func:`create_schema` first. Raises :class:`AuditError` for a dialect other than
    SQLite or PostgreSQL, or a table name that is not a plain lowercase identifier.
    Every method raises :class:`AuditUnavailable` when the database refuses or this
    process's appends stay queued past *lock_timeout*.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        table_name: str = DEFAULT_TABLE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
    ) -> None:
        dialect = engine.dialect.name
        if dialect not in {"postgresql", "sqlite"}:
            raise AuditError(f"no audit backend for the {dialect} dialect")
        self._engine = engine
        self._table = _table_for(table_name)
        self._lock_timeout = lock_timeout
        self._lock = threading.Lock()
        # One key per table, so tests' tables (and only they) append in parallel.
        self._append_lock_key = _SCHEMA_LOCK_KEY | zlib.crc32(table_name.encode())

    def append(self, build: RecordBuilder) -> AuditRecord:
        """See :meth:`audit.backend.AuditBackend.append`."""
        (record,) = self.append_many((build,))
        return record

    def append_many(self, builds: Sequence[RecordBuilder]) -> list[AuditRecord]:
        """See :meth:`audit.backend.AuditBackend.append_many`: one transaction."""
        if not builds:
            return []
        if not self._lock.acquire(timeout=self._lock_timeout):
            raise AuditUnavailable("audit appends are queued past their timeout")
        try:
            with self._engine.connect() as connection:
                if connection.dialect.name == "postgresql":
                    # The head is read after the lock is granted: READ COMMITTED takes a
                    # fresh snapshot per statement, where REPEATABLE READ would keep
                    # the one from before the wait and build on a stale head.
                    connection = connection.execution_options(isolation_level="READ COMMITTED")
                with connection.begin():
                    self._lock_for_append(connection)
                    records = build_chain(self._read_head(connection), builds)
                    connection.execute(insert(self._table), [_row_from(r) for r in records])
            return records
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit append failed: {type(exc).__name__}") from exc
        finally:
            self._lock.release()

    def head(self) -> AuditRecord | None:
        """See :meth:`audit.backend.AuditBackend.head`."""
        try:
            with self._engine.connect() as connection:
                return self._read_head(connection)
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit read failed: {type(exc).__name__}") from exc

    def read(
        self, *, after_seq: int = 0, workspace_id: str | None = None, limit: int = 500
    ) -> list[AuditRecord]:
        """See :meth:`audit.backend.AuditBackend.read`."""
        check_read_arguments(after_seq, workspace_id, limit)
        table = self._table
        query = select(table).where(table.c.seq > after_seq).order_by(table.c.seq).limit(limit)
        if workspace_id is not None:
            query = query.where(table.c.workspace_id == workspace_id)
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"audit read failed: {type(exc).__name__}") from exc
        return [_record_from(row) for row in rows]

    def _lock_for_append(self, connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(self._append_lock_key)))
            return
        # SQLite: take the write lock before reading the head. A deferred transaction
        # that reads and then writes can lose the race to another process's writer.
        raw = connection.connection.dbapi_connection
        if not getattr(raw, "in_transaction", False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            # An engine hook already began a deferred transaction; a write that matches
            # no row still takes the write lock, waiting out busy_timeout for it.
            connection.exec_driver_sql(f'UPDATE "{self._table.name}" SET seq = seq WHERE 0')

    def _read_head(self, connection: Connection) -> AuditRecord | None:
        table = self._table
        row = (
            connection.execute(select(table).order_by(table.c.seq.desc()).limit(1))
            .mappings()
            .first()
        )
        return None if row is None else _record_from(row)


def _table_for(name: str) -> Table:
    if not _TABLE_NAME.fullmatch(name):
        # The name is spliced into DDL and lock statements: no quoting games.
        raise AuditError(f"audit table names must match {_TABLE_NAME.pattern}")
    return AUDIT_EVENTS if name == DEFAULT_TABLE else audit_table(MetaData(), name)


def _guard_statements(dialect: str, table: str) -> list[str]:
    """DDL that makes *table* append-only; every statement is idempotent."""
    trigger = f"{table}_append_only"
    if dialect == "postgresql":
        return [
            f"""
            CREATE OR REPLACE FUNCTION {_GUARD_FUNCTION}() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the audit trail is append-only: % on % refused',
                    TG_OP, TG_TABLE_NAME;
            END
            $$
            """,
            # Statement-level, so an UPDATE or DELETE matching no row is refused too, and
            # TRUNCATE (which has no rows) is covered. DROP TABLE fires no trigger.
            f"""
            DO $$
            BEGIN
                IF NOT EXISTS (
                    SELECT 1 FROM pg_trigger
                    WHERE tgrelid = '{table}'::regclass AND tgname = '{trigger}'
                ) THEN
                    CREATE TRIGGER {trigger}
                    BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}
                    FOR EACH STATEMENT EXECUTE FUNCTION {_GUARD_FUNCTION}();
                END IF;
            END
            $$
            """,
        ]
    return [
        f"""
        CREATE TRIGGER IF NOT EXISTS {trigger}_{verb.lower()}
        BEFORE {verb} ON {table}
        BEGIN
            SELECT RAISE(ABORT, 'the audit trail is append-only');
        END
        """
        for verb in ("UPDATE", "DELETE")
    ]


def _row_from(record: AuditRecord) -> dict[str, Any]:
    row: dict[str, Any] = record.to_dict()
    row["recorded"] = record.recorded
    row["on_behalf_of"] = json.dumps(list(record.on_behalf_of), separators=(",", ":"))
    return row


def _record_from(row: RowMapping) -> AuditRecord:
    seq = row["seq"]
    try:
        recorded: datetime = row["recorded"]
        # SQLite hands back the stored UTC value without its offset.
        recorded = (
            recorded.replace(tzinfo=UTC) if recorded.tzinfo is None else recorded.astimezone(UTC)
        )
        on_behalf_of = json.loads(row["on_behalf_of"])
        if not isinstance(on_behalf_of, list):
            raise InvalidAuditField("on_behalf_of is not a JSON array")
        return AuditRecord(
            id=row["id"],
            seq=seq,
            workspace_id=row["workspace_id"],
            type=AuditType(row["type"]),
            action=AuditAction(row["action"]),
            recorded=recorded,
            outcome=AuditOutcome(row["outcome"]),
            reason=AuditReason(row["reason"]),
            actor_kind=ActorKind(row["actor_kind"]),
            actor_id=row["actor_id"],
            on_behalf_of=tuple(on_behalf_of),
            channel=row["channel"],
            node_id=row["node_id"],
            task_id=row["task_id"],
            chat_id=row["chat_id"],
            conversation_id=row["conversation_id"],
            request_id=row["request_id"],
            prev_hash=row["prev_hash"],
            hash=row["hash"],
        )
    except (ValueError, TypeError, AttributeError) as exc:
        # Not chained to *exc*: its message may quote the stored value.
        reason = str(exc) if isinstance(exc, InvalidAuditField) else "a field is malformed"
        raise InvalidAuditField(f"stored audit record seq {seq}: {reason}") from None

"""Rows written many at a time, with none of SQLAlchemy's per-statement work.

Every progress update and every message is a small commit: a task row upserted, two
or three event rows inserted. Through SQLAlchemy's Core each such statement is looked
up in the compiled cache (its cache key built afresh each time), given an execution
context, and its parameters processed one by one: about five times what SQLite
itself takes to store the rows. A :class:`RowWriter` does that work once per table
and dialect — the statement compiled to the driver's SQL, each column's bind
processor looked up — and then hands the driver one ``executemany``, inside the
caller's transaction: on PostgreSQL through
:meth:`~sqlalchemy.engine.Connection.exec_driver_sql` (the driver's errors leave as
SQLAlchemy's, with the bound values hidden), on SQLite on the driver's own cursor.

What goes in the database is exactly what the Core statement would have written: the
values pass through the same bind processors (:class:`~server.storage.tables.UtcDateTime`,
booleans on SQLite).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Insert, Table, bindparam
from sqlalchemy import insert as generic_insert
from sqlalchemy.dialects import postgresql, sqlite

from server.storage.tables import UtcDateTime


class RowWriter:
    """An ``INSERT`` of *table*'s rows (or an upsert by primary key), for one dialect."""

    def __init__(self, dialect: Dialect, table: Table, *, upsert: bool = False) -> None:
        names = [column.name for column in table.columns]
        statement = upsert_statement(dialect.name, table) if upsert else generic_insert(table)
        # Every column bound by name, so the compiled order of the parameters is known.
        compiled = statement.values({name: bindparam(name) for name in names}).compile(
            dialect=dialect
        )
        self.sql = compiled.string
        self._sqlite = dialect.name == "sqlite"
        self._positional = bool(compiled.positional)
        order = list(compiled.positiontup or ()) if self._positional else names
        if sorted(order) != sorted(names):
            raise ValueError(f"{table.name}: the statement binds {order}, not every column")
        self._order = tuple(order)
        self._processors: tuple[tuple[str, Callable[[Any], Any]], ...] = tuple(
            (name, processor)
            for name in self._order
            if (processor := _bind_processor(dialect, table.c[name].type)) is not None
        )
        processors = dict(self._processors)
        self._spec = tuple((name, processors.get(name)) for name in self._order)

    def parameters(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        """*rows* as the driver takes them: tuples in the statement's order, or dicts."""
        if not self._positional:
            processors = self._processors
            processed = []
            for row in rows:
                row = dict(row)
                for name, processor in processors:
                    row[name] = processor(row[name])
                processed.append(row)
            return processed
        spec = self._spec
        return [
            tuple([row[name] if p is None else p(row[name]) for name, p in spec]) for row in rows
        ]

    def execute(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Write *rows* (each a value for every column) in *connection*'s transaction."""
        if not rows:
            return
        if self._sqlite:
            # SQLite's driver straight away: even exec_driver_sql's execution context
            # costs as much again as SQLite's own work for a row or two. Its errors are
            # sqlite3's (the store takes those as well as SQLAlchemy's).
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(self.sql, self.parameters(rows))
            finally:
                cursor.close()
        else:
            connection.exec_driver_sql(self.sql, self.parameters(rows))


def _bind_processor(dialect: Dialect, column_type: Any) -> Callable[[Any], Any] | None:
    if dialect.name == "sqlite" and isinstance(column_type, UtcDateTime):
        return sqlite_utc_text
    processor: Callable[[Any], Any] | None = column_type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return processor


def sqlite_utc_text(value: datetime | None) -> str | None:
    """What :class:`~server.storage.tables.UtcDateTime` and then SQLite's ``DATETIME``
    make of *value*, in one step (the two took a sixth of a progress update's commit)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


@functools.cache
def upsert_statement(dialect: str, table: Table) -> Insert:
    """An ``INSERT`` into *table* that replaces any row with the same primary key.

    Built once per table: the ``excluded`` namespace costs more to build than the
    statement costs to run.
    """
    insert: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        insert = postgresql.insert(table)
    elif dialect == "sqlite":
        insert = sqlite.insert(table)
    else:  # pragma: no cover - create_engine_for accepts only the two
        raise ValueError(f"unsupported dialect: {dialect}")
    return insert.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={c.name: insert.excluded[c.name] for c in table.columns if not c.primary_key},
    )


class RowWriters:
    """The writers of one engine's dialect, each built on first use."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._writers: dict[tuple[str, bool], RowWriter] = {}

    def insert(self, connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        self._writer(table, upsert=False).execute(connection, rows)

    def upsert(self, connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        self._writer(table, upsert=True).execute(connection, rows)

    def _writer(self, table: Table, *, upsert: bool) -> RowWriter:
        key = (table.name, upsert)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = RowWriter(self._dialect, table, upsert=upsert)
        return writer

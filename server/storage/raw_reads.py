"""Core selects compiled once and run on SQLite's own DB-API connection.

What every socket opened reads (its conversation, its chat's last ``seq``, the few
events it missed) is a read of one row or a few, made in the event loop's thread
(:meth:`server.storage.sql_store.SqlStore._read_rows`). SQLite answers one in about
5 µs; SQLAlchemy's execution around it (the compiled cache's lookup, the execution
context, the parameters processed, the result and its rows) costs about 30 µs more,
and a ``BEGIN`` and ``COMMIT`` of their own two more statements. A :class:`RawRead` is
the same statement's SQL, compiled once for the engine's dialect, executed on the
driver's connection in autocommit (a single ``SELECT`` is its own read transaction), with
each column's value converted as SQLAlchemy converts it (a ``DATETIME``'s text parsed,
then the column type's own ``process_result_value``).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect


class RawRead:
    """*statement* compiled for *dialect* (SQLite's, whose parameters are positional).

    Raises ``ValueError`` if the compiled statement does not bind its parameters by
    position.
    """

    __slots__ = ("_binds", "_converters", "_row", "sql")

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not compiled.positional:
            raise ValueError("a raw read needs a dialect with positional parameters")
        self.sql = str(compiled)
        # A parameter of the caller's by name, or a value fixed at compile time (the
        # ``OFFSET 0`` SQLite's dialect adds after a bound ``LIMIT``).
        self._binds = tuple(
            (name, None) if compiled.binds[name].required else (None, compiled.binds[name].value)
            for name in compiled.positiontup or ()
        )
        columns = list(statement.selected_columns)
        self._row: Any = namedtuple("RawRow", [c.key for c in columns])  # type: ignore[misc]
        converters: list[tuple[int, Callable[[Any], Any]]] = []
        for index, column in enumerate(columns):
            convert = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if convert is not None:
                converters.append((index, convert))
        self._converters = tuple(converters)

    def rows(self, connection: sqlite3.Connection, parameters: Mapping[str, Any]) -> list[Any]:
        """The rows selected, each with its columns as attributes; raises what the
        driver raises (``sqlite3.Error``)."""
        values = [fixed if name is None else parameters[name] for name, fixed in self._binds]
        fetched = connection.execute(self.sql, values).fetchall()
        if not self._converters:
            return [self._row._make(row) for row in fetched]
        rows = []
        for row in fetched:
            items = list(row)
            for index, convert in self._converters:
                items[index] = convert(items[index])
            rows.append(self._row._make(items))
        return rows

"""Engines for ``DATABASE_URL``, and the schema they hold.

``sqlite:///path`` is the embedded default: one file, WAL journal, foreign keys on.
``postgresql://``, ``postgres://`` and ``postgresql+psycopg://`` all use psycopg 3.

SQLite allows one writer at a time. A write transaction therefore starts with
``BEGIN IMMEDIATE`` (:func:`begin_write`), taking the write lock before its first
read; a deferred ``BEGIN`` that reads and then writes can fail with "database is
locked" however long ``busy_timeout`` is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from agents.models import utcnow
from server.storage.tables import SCHEMA_VERSION, SCHEMA_VERSIONS

SQLITE_BUSY_TIMEOUT_MS = 5_000
SQLITE_POOL_SIZE = 8
POSTGRES_POOL_SIZE = 10
POSTGRES_MAX_OVERFLOW = 5
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_IDLE_IN_TRANSACTION_MS = 5_000
# A call waits this long for a connection; SqlStore's limiter keeps that wait rare.
POOL_TIMEOUT_S = 10

# Any constant shared by every node: held while one of them creates or migrates.
_SCHEMA_LOCK_KEY = 0x5357_4244  # "SWBD"

# The execution option that asks the SQLite ``begin`` hook for ``BEGIN IMMEDIATE``.
_IMMEDIATE = "switchboard_begin_immediate"


class SchemaTooNew(RuntimeError):
    """The database was migrated by newer code than this; refuse to run against it."""


def normalize_url(url: str | URL) -> URL:
    """*url* with PostgreSQL pointed at psycopg 3; raises ``ValueError`` for other schemes."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgres" or parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend in {"postgresql", "sqlite"}:
        return parsed
    raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")


def create_engine_for(
    url: str | URL,
    *,
    pool_size: int | None = None,
    connect_args: Mapping[str, Any] | None = None,
    application_name: str | None = None,
) -> Engine:
    """An engine for *url*, configured for this server.

    SQLite: the file's directory is created; WAL, ``synchronous=NORMAL``,
    ``busy_timeout`` and foreign keys are set on every connection. PostgreSQL: psycopg
    3 with a bounded pool and pre-ping. Connects lazily. Raises ``ValueError`` for an
    unsupported scheme, ``OSError`` when the SQLite directory cannot be created.

    *application_name* names this process's PostgreSQL sessions (``pg_stat_activity``):
    a node passes its owner, so that a node taking over from a dead one can end the
    transactions it left open (:meth:`SqlStore.take_home`).
    """
    parsed = normalize_url(url)
    extra = dict(connect_args or {})
    # Errors then carry the SQL but never the values: those may be PHI.
    common: dict[str, Any] = {"hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, pool_size, extra, common)
    extra.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
    if application_name is not None:
        # PostgreSQL keeps 63 bytes of it; an owner longer than that is not matched.
        extra.setdefault("application_name", application_name)
    engine = create_engine(
        parsed,
        pool_size=pool_size or POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=extra,
        **common,
    )
    event.listen(engine, "connect", _on_postgres_connect)
    return engine


def _on_postgres_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # A node that stops in the middle of a transaction (SIGSTOP, a long pause, a lost
    # machine whose TCP has not timed out yet) would hold its row locks — a
    # conversation's, a chat's seq head — and with them every other node. Our
    # transactions never sit idle, so one that does is ended by the server.
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                f"SET idle_in_transaction_session_timeout = {POSTGRES_IDLE_IN_TRANSACTION_MS}"
            )
    finally:
        dbapi_connection.autocommit = autocommit


def _sqlite_engine(
    url: URL, pool_size: int | None, connect_args: dict[str, Any], common: dict[str, Any]
) -> Engine:
    database = url.database or ""
    in_memory = database in {"", ":memory:"} or database.startswith("file::memory:")
    # The store runs every call in a worker thread, so connections move between threads.
    connect_args.setdefault("check_same_thread", False)
    if in_memory:
        # Each connection to ":memory:" would be a new, empty database: share one.
        engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args, **common)
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            pool_size=pool_size or SQLITE_POOL_SIZE,
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args=connect_args,
            **common,
        )
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    assert isinstance(dbapi_connection, sqlite3.Connection)
    # Stop the driver from issuing its own BEGINs; _on_sqlite_begin issues them.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE, False)
    # On the driver's connection itself: a statement through SQLAlchemy costs more than
    # the BEGIN, and every commit begins one.
    dbapi_connection = connection.connection.driver_connection
    assert isinstance(dbapi_connection, sqlite3.Connection)
    dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction: committed on exit, rolled back on error.

    On SQLite the transaction takes the database's write lock at once (``BEGIN
    IMMEDIATE``), waiting up to ``busy_timeout`` for it.
    """
    with engine.connect() as connection:
        connection.execution_options(**{_IMMEDIATE: True})
        with connection.begin():
            yield connection


def open_inline_writer(engine: Engine) -> Connection:
    """A SQLite connection of *engine*'s for writes made in the event loop's own thread.

    It never waits: ``busy_timeout`` is 0, so a ``BEGIN IMMEDIATE`` that would have to
    wait for another writer fails at once (the caller then writes from a worker thread
    instead); and it never checkpoints the WAL on commit (``wal_autocheckpoint`` 0),
    which would write the database file and sync it: the caller checkpoints from a
    worker thread. Held until closed, outside the pool's rotation.
    """
    connection = engine.connect()
    dbapi_connection = connection.connection.driver_connection
    assert isinstance(dbapi_connection, sqlite3.Connection)
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execution_options(**{_IMMEDIATE: True})
    return connection


def open_inline_reader(engine: Engine) -> Connection:
    """A SQLite connection of *engine*'s for one-row reads made in the event loop's own
    thread (a conversation, a chat's head: what every socket opened reads).

    In WAL mode a reader waits for no writer; with ``busy_timeout`` 0 it does not wait
    in the rare cases where it would (a WAL being recovered), it fails, and the caller
    reads from a worker thread instead. Held until closed, outside the pool's rotation.
    """
    connection = engine.connect()
    dbapi_connection = connection.connection.driver_connection
    assert isinstance(dbapi_connection, sqlite3.Connection)
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    return connection


def checkpoint_wal(engine: Engine) -> None:
    """Copy what the WAL holds into the database file, waiting for no one (PASSIVE)."""
    with engine.connect() as connection:
        dbapi_connection = connection.connection.driver_connection
        assert isinstance(dbapi_connection, sqlite3.Connection)
        dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
REVISIONS = {1: "0001", 2: "0002", 3: "0003", 4: "0004"}
"""The Alembic revision of each schema version (databases from before Alembic say
only their version)."""


def _alembic(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def create_schema(engine: Engine) -> None:
    """Create or migrate the schema (Alembic, ``migrations/``) and record its version.

    Safe to run on every start and from several nodes at once (PostgreSQL serializes
    them with an advisory lock); all of it is one transaction. A database from before
    Alembic is stamped at the revision of the version it records, then upgraded.
    Raises :class:`SchemaTooNew` if the database was migrated by newer code, and
    SQLAlchemy's errors if the database refuses.
    """
    with begin_write(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        config = _alembic(connection)
        known = {r.revision for r in ScriptDirectory.from_config(config).walk_revisions()}
        current = MigrationContext.configure(connection).get_current_revision()
        recorded: int | None = None
        if inspect(connection).has_table(SCHEMA_VERSIONS.name):
            recorded = connection.execute(select(func.max(SCHEMA_VERSIONS.c.version))).scalar()
        if (recorded is not None and recorded > SCHEMA_VERSION) or (
            current is not None and current not in known
        ):
            raise SchemaTooNew(
                f"the database schema ({current or recorded}) is newer than this server's "
                f"({REVISIONS[SCHEMA_VERSION]})"
            )
        if current is None and recorded is not None:
            command.stamp(config, REVISIONS[recorded])
        command.upgrade(config, REVISIONS[SCHEMA_VERSION])
        if recorded is None or recorded < SCHEMA_VERSION:
            # Still recorded: a node from before Alembic refuses a schema newer than its own.
            connection.execute(
                insert(SCHEMA_VERSIONS).values(version=SCHEMA_VERSION, applied_at=utcnow())
            )


def schema_version(engine: Engine) -> int:
    """The database's schema version; 0 before :func:`create_schema` has run."""
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, SCHEMA_VERSIONS.name):
            return 0
        version = connection.execute(select(func.max(SCHEMA_VERSIONS.c.version))).scalar()
    return int(version or 0)

"""The runtime's :class:`~agents.ports.Store` and :class:`~agents.ports.PatientDirectory`
on SQL (SQLite or PostgreSQL), through the tables of :mod:`server.storage.tables`.

SQLAlchemy is synchronous: every call runs in a worker thread, at most as many at a
time as the pool has connections, so a burst queues here instead of in the pool.
Database errors leave as :class:`~agents.exceptions.Unavailable` with a fixed message;
the original is chained for the logs, and the engine hides bound values from it.

``seq`` is assigned in the transaction that stores the event: the chat's
``chat_heads`` row is moved forward with ``UPDATE ... RETURNING``, which holds the
row's lock on PostgreSQL until commit, so concurrent committers to one chat queue
behind each other and the numbers stay gapless. SQLite has one writer at a time
anyway; a process-wide lock makes this process's writers queue without spinning on
``busy_timeout``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import TaskStatus
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    text,
    update,
)
from sqlalchemy import insert as generic_insert
from sqlalchemy import select as core_select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from agents.exceptions import Fenced, HomedElsewhere, NotFound, SwitchboardError, Unavailable
from agents.models import (
    TERMINAL_STATES,
    AgentDefinition,
    Chat,
    Conversation,
    Patient,
    StreamEvent,
    Task,
    TaskState,
    utcnow,
)
from agents.ports import Changes, Fence, Unsettled, home_is_alive
from server.protocol import encode
from server.storage.bulk import RowWriters, upsert_statement
from server.storage.engine import (
    begin_write,
    checkpoint_wal,
    create_schema,
    open_inline_reader,
    open_inline_writer,
)
from server.storage.group_commit import GroupCommitter
from server.storage.raw_reads import RawRead
from server.storage.rows import (
    agent_from_row,
    agent_values,
    chat_from_row,
    chat_values,
    conversation_from_row,
    conversation_values,
    event_from_row,
    numbered_rows,
    patient_from_row,
    patient_values,
    task_from_row,
    task_values,
)
from server.storage.tables import (
    AGENTS,
    CHAT_HEADS,
    CHATS,
    CONVERSATIONS,
    EVENTS,
    NODES,
    PATIENTS,
    TASKS,
    AgentRow,
    ChatRow,
    EventRow,
    PatientRow,
    TaskRow,
)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class StoredFrame:
    """A stored event as the frame PROTOCOL.md sends for it (see :meth:`SqlStore.frames_after`)."""

    seq: int
    task_id: str | None
    text: str


log = logging.getLogger(__name__)

INLINE_MAX_EVENTS = 500
"""A batch with more events is written from a worker thread: inline, it would hold the
event loop for milliseconds (see :meth:`SqlStore._commit_inline`)."""

CHECKPOINT_EVERY_S = 1.0
CHECKPOINT_EVERY_BATCHES = 250
"""While the inline writer writes, the WAL is checkpointed after so many of its batches
(a few MiB of WAL: SQLite's own default is 1,000 pages), or a second after the first."""

TAKE_HOME_LOCK_MS = 1_000
"""How long a take-over waits for the conversation's row (PostgreSQL) before retrying."""

# The sessions of a dead home that sit in an open transaction, each ended.
# Every session of the dead home but those at rest between transactions: one 'idle in
# transaction', and one 'active' — a statement still running, or a pipeline (psycopg's
# executemany) sent but for its Sync, which PostgreSQL's idle timeout never ends.
_END_DEAD_HOMES_SESSIONS = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE application_name = :home AND datname = current_database()"
    " AND state <> 'idle' AND pid <> pg_backend_pid()"
)

# What every socket opened reads: built once, with the values bound at each call (a
# statement built per call costs more than SQLite's answer to it).
_CONVERSATION = core_select(CONVERSATIONS).where(
    CONVERSATIONS.c.id == bindparam("id"), CONVERSATIONS.c.workspace_id == bindparam("workspace")
)
_LAST_SEQ = core_select(CHAT_HEADS.c.last_seq).where(CHAT_HEADS.c.chat_id == bindparam("chat"))
_FRAMES = (
    core_select(EVENTS.c.seq, EVENTS.c.task_id, EVENTS.c.wire)
    .where(EVENTS.c.chat_id == bindparam("chat"), EVENTS.c.seq > bindparam("after"))
    .order_by(EVENTS.c.seq)
    .limit(bindparam("limit"))
)

INLINE_MAX_FRAMES = 64
"""A page of a replay of at most so many events is read in the event loop's thread (a
reconnecting client has missed a few); a longer one from a worker thread, since inline
it would hold the loop for longer than the thread's hop costs."""

_UNFINISHED = sorted(state.value for state in TaskState if state not in TERMINAL_STATES)
_ANNOUNCED_STATES = sorted(s.value for s in TERMINAL_STATES if s is not TaskState.INTERRUPTED)

_RUNNING = TASKS.c.state.in_(_UNFINISHED)
_UNSETTLED = (
    core_select(
        TASKS.c.workspace_id,
        TASKS.c.conversation_id,
        func.max(case((_RUNNING, 1), else_=0)),
    )
    .where(
        or_(
            _RUNNING,
            and_(
                TASKS.c.state.in_(_ANNOUNCED_STATES),
                TASKS.c.depth == 1,
                TASKS.c.followed_up.is_(False),
            ),
        )
    )
    .group_by(TASKS.c.workspace_id, TASKS.c.conversation_id)
)


class SqlStore:
    """The store and patient directory on one SQLAlchemy engine, which it owns.

    Every method raises :class:`~agents.exceptions.Unavailable` when the database
    refuses or cannot be reached, and then nothing was written.
    """

    def __init__(self, engine: Engine, *, max_concurrency: int | None = None) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._limiter = anyio.CapacityLimiter(max_concurrency or _pool_capacity(engine))
        # SQLite only: this process's writers take turns here (see the module docstring).
        self._write_lock = threading.Lock()
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._group = GroupCommitter(self._commit_batch, self._commit_direct)
        self._rows = RowWriters(engine.dialect)
        # SQLite files only, while run() runs: the event loop's own writer (_commit_inline).
        self._inline: Connection | None = None
        # And its own reader of a row or a few (_read_rows), on the driver's connection.
        self._reader: Connection | None = None
        self._raw_reader: sqlite3.Connection | None = None
        self._raw_reads = (
            {s: RawRead(s, engine.dialect) for s in (_CONVERSATION, _LAST_SEQ, _FRAMES)}
            if self._sqlite
            else {}
        )
        self._inline_batches_since_checkpoint = 0
        self._checkpoint_due: anyio.Event | None = None
        self._checkpointing = False
        self.inline_batches = 0
        self.inline_reads = 0
        self.checkpoints = 0

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the group committer (:mod:`server.storage.group_commit`) until cancelled.

        Without it every commit is a transaction of its own, which is correct but slower
        when many conversations write at once. On a SQLite file it also holds the event
        loop's own writer (see :meth:`_commit_inline`) and checkpoints the WAL.
        """
        async with anyio.create_task_group() as tg:
            if self._sqlite and isinstance(self._engine.pool, QueuePool):
                try:
                    self._inline = await self._run(open_inline_writer, self._engine)
                    self._reader = await self._run(open_inline_reader, self._engine)
                    raw = self._reader.connection.driver_connection
                    assert isinstance(raw, sqlite3.Connection)
                    self._raw_reader = raw
                except Unavailable:
                    log.warning("no inline writer: every commit goes through a worker thread")
                    self._drop_inline()
                else:
                    tg.start_soon(self._checkpoint_wal)
            try:
                await self._group.run(task_status=task_status)
            finally:
                tg.cancel_scope.cancel()
                self._drop_inline()

    def _drop_inline(self) -> None:
        self._drop_reader()
        inline, self._inline = self._inline, None
        if inline is not None:
            # Not back into the pool: its settings (no busy wait, no checkpoints) are
            # for the event loop's writes only.
            inline.invalidate()
            inline.close()

    def _drop_reader(self) -> None:
        reader, self._reader = self._reader, None
        self._raw_reader = None
        if reader is not None:
            reader.invalidate()
            reader.close()

    async def _checkpoint_wal(self) -> None:
        """Checkpoint the WAL from a worker thread after the inline writer (which never
        does) has written: at most a second, or CHECKPOINT_EVERY_BATCHES batches, later."""
        self._checkpoint_due = anyio.Event()
        while True:
            with anyio.move_on_after(CHECKPOINT_EVERY_S):
                await self._checkpoint_due.wait()
            if not self._inline_batches_since_checkpoint:
                continue
            self._checkpoint_due = anyio.Event()
            self._inline_batches_since_checkpoint = 0
            # Meanwhile commits go through worker threads: a checkpoint writes the
            # database file and syncs it, and a write beside it can wait on the disk.
            self._checkpointing = True
            try:
                await self._run(checkpoint_wal, self._engine)
            except Unavailable:
                log.warning("WAL checkpoint failed")
            else:
                self.checkpoints += 1
            finally:
                self._checkpointing = False

    def statistics(self) -> dict[str, int]:
        return {
            **self._group.statistics(),
            "inline_batches": self.inline_batches,
            "inline_reads": self.inline_reads,
        }

    async def create_schema(self) -> None:
        """Create or migrate the schema (:func:`server.storage.engine.create_schema`)."""
        await self._run(create_schema, self._engine)

    async def ping(self) -> None:
        """Check that the database answers (readiness); raises ``Unavailable`` if not."""
        await self._run(self._ping_sync)

    async def close(self) -> None:
        """Close every pooled connection. A later call would open new ones."""
        await anyio.to_thread.run_sync(self._engine.dispose, limiter=self._limiter)

    # -- conversations and chats ---------------------------------------------------

    async def create_conversation(self, conversation: Conversation, chat: Chat) -> None:
        """Store a new conversation and its chat (which has no events yet)."""
        await self._run(self._create_conversation_sync, conversation, chat)

    async def get_conversation(
        self, workspace_id: str, conversation_id: str
    ) -> Conversation | None:
        # Core, not the ORM: every socket opened reads one, and a session and its
        # identity map cost more than the query.
        rows = await self._read_rows(
            _CONVERSATION, {"id": conversation_id, "workspace": workspace_id}
        )
        return conversation_from_row(rows[0]) if rows else None

    async def get_chat(self, workspace_id: str, chat_id: str) -> Chat | None:
        statement = select(ChatRow).where(
            ChatRow.id == chat_id, ChatRow.workspace_id == workspace_id
        )
        row = await self._run(self._first, statement)
        return None if row is None else chat_from_row(row)

    async def list_chats(self, workspace_id: str, person_id: str) -> list[Chat]:
        """The chats of the person's conversations (their own and their tasks'), newest first."""
        statement = (
            select(ChatRow)
            .where(ChatRow.workspace_id == workspace_id, ChatRow.person_id == person_id)
            .order_by(col(ChatRow.created_at).desc(), col(ChatRow.id).desc())
        )
        return [chat_from_row(row) for row in await self._run(self._all, statement)]

    # -- events ------------------------------------------------------------------

    async def commit(self, changes: Changes) -> list[StreamEvent]:
        """Store *changes* in one transaction; return the appended events with ``seq``.

        Raises :class:`~agents.exceptions.NotFound` for an event whose chat does not
        exist, ``Unavailable`` if the database refuses (a duplicate chat id included);
        either way nothing of *changes* is stored.
        """
        if not (changes.chats or changes.tasks or changes.events):
            return []
        return await self._group.commit(changes)

    def hurry(self, conversation_id: str) -> None:
        self._group.hurry(conversation_id)

    async def _commit_direct(self, changes: Changes) -> list[StreamEvent]:
        return await self._run(self._commit_sync, changes)

    async def take_home(
        self, conversation_id: str, owner: str = "", *, alive_within: float | None = None
    ) -> int:
        """Make *owner* the conversation's home: move its fencing number up and return it.

        Raises ``NotFound`` for an unknown conversation, and ``HomedElsewhere`` while
        another live node is its recorded home (see :class:`~agents.ports.Store`). The
        row lock this takes on PostgreSQL waits for commits still checking the old
        number, so none of those can land after it.
        """
        found = await self._run(self._take_home_sync, conversation_id, owner, alive_within)
        if isinstance(found, str):
            raise HomedElsewhere(found)
        if found is None:
            raise NotFound("conversation")
        return found

    async def release_home(self, conversation_id: str, owner: str) -> None:
        """*owner* no longer runs the conversation (if it was its recorded home)."""
        await self._run(
            self._execute_sync,
            update(CONVERSATIONS)
            .where(CONVERSATIONS.c.id == conversation_id, CONVERSATIONS.c.home_owner == owner)
            .values(home_owner=None),
        )

    async def heartbeat(self, owner: str) -> None:
        """*owner* is alive now (one row per running process)."""
        await self._run(self._upsert_sync, NODES, [{"owner": owner, "seen_at": utcnow()}])

    async def forget_node(self, owner: str) -> None:
        """*owner* stops: its heartbeat goes, and it is no one's recorded home."""
        await self._run(
            self._execute_sync,
            update(CONVERSATIONS)
            .where(CONVERSATIONS.c.home_owner == owner)
            .values(home_owner=None),
            NODES.delete().where(NODES.c.owner == owner),
        )

    async def _commit_batch(
        self, batch: Sequence[Changes]
    ) -> list[list[StreamEvent] | SwitchboardError]:
        inline = self._inline
        if (
            inline is not None
            and not self._checkpointing
            and sum(len(c.events) for c in batch) <= INLINE_MAX_EVENTS
        ):
            stored = self._commit_inline(inline, batch)
            if stored is not None:
                await anyio.lowlevel.checkpoint()
                return list(stored)
        return await self._run(self._commit_batch_sync, batch)

    def _commit_inline(
        self, inline: Connection, batch: Sequence[Changes]
    ) -> list[list[StreamEvent]] | None:
        """Store *batch* in one transaction from the event loop's own thread; ``None``
        (and nothing stored) if that would wait, or failed.

        A small commit on SQLite takes tens of microseconds, and handing it to a worker
        thread and back costs more CPU than the commit (two thread switches and the
        loop's wake-up). So while no other writer of this process holds the database,
        the batch is written here, on a connection that never waits for a lock and
        never checkpoints (:func:`~server.storage.engine.open_inline_writer`). Anything
        else — another process's writer, a bad commit in the batch, a fence — goes the
        worker thread's way, which waits for the lock and finds the bad commit.
        """
        if not self._write_lock.acquire(blocking=False):
            return None
        try:
            merged, fences = _merged(batch)
            events = self._commit_sync(merged, fences, held=inline)
        except (SQLAlchemyError, self._dbapi_error, NotFound, Fenced):
            if inline.invalidated:
                # Its connection was lost: a new one would have the pool's settings.
                self._drop_inline()
            return None
        finally:
            self._write_lock.release()
        self.inline_batches += 1
        self._inline_batches_since_checkpoint += 1
        due = self._checkpoint_due
        if due is not None and self._inline_batches_since_checkpoint >= CHECKPOINT_EVERY_BATCHES:
            due.set()
        return _split(events, batch)

    async def events_after(self, chat_id: str, after: int, limit: int) -> list[StreamEvent]:
        """Up to *limit* events of *chat_id* with ``seq > after``, oldest first."""
        if limit <= 0:
            return []
        statement = (
            select(EventRow)
            .where(EventRow.chat_id == chat_id, EventRow.seq > after)
            .order_by(col(EventRow.seq))
            .limit(limit)
        )
        return [event_from_row(row) for row in await self._run(self._all, statement)]

    async def frames_after(self, chat_id: str, after: int, limit: int) -> list[StoredFrame]:
        """Up to *limit* events of *chat_id* with ``seq > after`` as the frames sent for
        them, oldest first: stored text, read without building an event per row."""
        if limit <= 0:
            return []
        if limit <= INLINE_MAX_FRAMES:
            rows = await self._read_rows(_FRAMES, {"chat": chat_id, "after": after, "limit": limit})
            if all(row.wire is not None for row in rows):
                return [StoredFrame(row.seq, row.task_id, row.wire) for row in rows]
        return await self._run(self._frames_after_sync, chat_id, after, limit)

    async def last_seq(self, chat_id: str) -> int:
        """The ``seq`` of the chat's newest event; 0 if it has none (or does not exist)."""
        rows = await self._read_rows(_LAST_SEQ, {"chat": chat_id})
        return int(rows[0].last_seq) if rows else 0

    # -- tasks ---------------------------------------------------------------------

    async def get_task(self, workspace_id: str, task_id: str) -> Task | None:
        statement = select(TaskRow).where(
            TaskRow.id == task_id, TaskRow.workspace_id == workspace_id
        )
        row = await self._run(self._first, statement)
        return None if row is None else task_from_row(row)

    async def list_tasks(self, workspace_id: str, conversation_id: str) -> list[Task]:
        """The conversation's tasks, oldest first."""
        statement = (
            select(TaskRow)
            .where(TaskRow.workspace_id == workspace_id, TaskRow.conversation_id == conversation_id)
            .order_by(col(TaskRow.created_at), col(TaskRow.id))
        )
        return [task_from_row(row) for row in await self._run(self._all, statement)]

    async def unsettled(self) -> list[Unsettled]:
        """See :meth:`agents.ports.Store.unsettled`: one grouped query, no task rows."""
        return await self._run(self._unsettled_sync)

    def _unsettled_sync(self) -> list[Unsettled]:
        rows = [tuple(row) for row in self._select_rows(_UNSETTLED, {})]
        return [Unsettled(w, c, bool(running)) for w, c, running in rows]

    async def list_agents(self, workspace_id: str) -> list[AgentDefinition]:
        """The workspace's agents: the primary first, then by name."""
        statement = (
            select(AgentRow)
            .where(AgentRow.workspace_id == workspace_id)
            .order_by(col(AgentRow.is_primary).desc(), col(AgentRow.name), col(AgentRow.id))
        )
        return [agent_from_row(row) for row in await self._run(self._all, statement)]

    async def save_agents(self, agents: Sequence[AgentDefinition]) -> None:
        """Insert or replace *agents*, each by (workspace_id, id)."""
        if agents:
            await self._run(self._upsert_sync, AGENTS, [agent_values(a) for a in agents])

    async def list_patients(self, workspace_id: str) -> list[Patient]:
        statement = (
            select(PatientRow)
            .where(PatientRow.workspace_id == workspace_id)
            .order_by(col(PatientRow.name), col(PatientRow.id))
        )
        return [patient_from_row(row) for row in await self._run(self._all, statement)]

    async def get_patient(self, workspace_id: str, patient_id: str) -> Patient | None:
        statement = select(PatientRow).where(
            PatientRow.workspace_id == workspace_id, PatientRow.id == patient_id
        )
        row = await self._run(self._first, statement)
        return None if row is None else patient_from_row(row)

    async def save_patients(self, patients: Sequence[Patient]) -> None:
        """Insert or replace *patients*, each by (workspace_id, id)."""
        if patients:
            await self._run(self._upsert_sync, PATIENTS, [patient_values(p) for p in patients])

    # -- the thread boundary -------------------------------------------------------

    async def _read_rows(self, statement: Select[Any], parameters: dict[str, Any]) -> list[Any]:
        """The rows *statement* (one of :attr:`_raw_reads`, a read of a few rows) selects:
        read in the event loop's thread on a SQLite file (a worker thread's hop costs more
        than the read), else in a worker thread.

        Inline, the statement is a :class:`~server.storage.raw_reads.RawRead` on
        :func:`open_inline_reader`'s connection, in autocommit: one statement, its own
        read transaction, so it never holds back a checkpoint. If it fails for any
        reason, it is made again from a worker thread, which waits and reports as every
        read does; a failure other than a busy or locked database drops the reader.
        """
        raw = self._raw_reader
        if raw is not None:
            try:
                rows = self._raw_reads[statement].rows(raw, parameters)
            except sqlite3.OperationalError:
                pass
            except sqlite3.Error:
                self._drop_reader()
            else:
                self.inline_reads += 1
                return rows
        return await self._run(self._select_rows, statement, parameters)

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)
        except (SQLAlchemyError, self._dbapi_error) as exc:
            raise Unavailable("store unavailable") from exc

    # -- worker-thread side: everything below blocks ---------------------------------

    @contextmanager
    def _writing(self, held: Connection | None = None) -> Iterator[Connection]:
        if held is not None:
            # The inline writer (_commit_inline), whose caller holds the write lock.
            with held.begin():
                yield held
        elif self._sqlite:
            with self._write_lock, begin_write(self._engine) as connection:
                yield connection
        else:
            with begin_write(self._engine) as connection:
                yield connection

    def _ping_sync(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()

    def _all(self, statement: SelectOfScalar[_T]) -> list[_T]:
        with Session(self._engine) as session:
            return list(session.exec(statement).all())

    def _frames_after_sync(self, chat_id: str, after: int, limit: int) -> list[StoredFrame]:
        with self._engine.connect() as connection:
            parameters = {"chat": chat_id, "after": after, "limit": limit}
            rows = connection.execute(_FRAMES, parameters).all()
        missing = [seq for seq, _, wire in rows if wire is None]
        rebuilt: dict[int, str] = {}
        if missing:
            # Stored before schema 4: rebuilt from the body, as it was sent live.
            old = select(EventRow).where(
                EventRow.chat_id == chat_id, col(EventRow.seq).in_(missing)
            )
            rebuilt = {row.seq: encode(event_from_row(row).to_wire()) for row in self._all(old)}
        return [
            StoredFrame(seq, task_id, wire if wire is not None else rebuilt[seq])
            for seq, task_id, wire in rows
        ]

    def _first(self, statement: SelectOfScalar[_T]) -> _T | None:
        with Session(self._engine) as session:
            return session.exec(statement).first()

    def _select_rows(self, statement: Select[Any], parameters: dict[str, Any]) -> list[Row[Any]]:
        with self._engine.connect() as connection:
            return list(connection.execute(statement, parameters).all())

    def _create_conversation_sync(self, conversation: Conversation, chat: Chat) -> None:
        with self._writing() as connection:
            connection.execute(generic_insert(CONVERSATIONS), [conversation_values(conversation)])
            connection.execute(generic_insert(CHATS), [chat_values(chat)])
            connection.execute(generic_insert(CHAT_HEADS), [{"chat_id": chat.id, "last_seq": 0}])

    def _upsert_sync(self, table: Table, rows: list[dict[str, Any]]) -> None:
        with self._writing() as connection:
            upsert(connection, table, rows)

    def _commit_batch_sync(
        self, batch: Sequence[Changes]
    ) -> list[list[StreamEvent] | SwitchboardError]:
        """Store *batch* in one transaction; if that fails, commit by commit."""
        merged, fences = _merged(batch)
        try:
            return list(_split(self._commit_sync(merged, fences), batch))
        except (SQLAlchemyError, self._dbapi_error, NotFound, Fenced):
            if len(batch) == 1:
                raise
        # One of them is bad (a duplicate chat, an unknown chat): find it, keep the rest.
        results: list[list[StreamEvent] | SwitchboardError] = []
        for changes in batch:
            try:
                results.append(self._commit_sync(changes))
            except (NotFound, Fenced) as exc:
                results.append(exc)
            except (SQLAlchemyError, self._dbapi_error):
                results.append(Unavailable("store unavailable"))
        return results

    def _execute_sync(self, *statements: Any) -> None:
        with self._writing() as connection:
            for statement in statements:
                connection.execute(statement)

    def _take_home_sync(
        self, conversation_id: str, owner: str, alive_within: float | None
    ) -> int | str | None:
        """The new fence; or the live home's owner; or ``None`` for no such conversation."""
        postgres = not self._sqlite
        if postgres and alive_within is not None:
            self._end_dead_homes_transactions(conversation_id, owner, alive_within)
        with self._writing() as connection:
            statement = select(CONVERSATIONS.c.home_owner).where(
                CONVERSATIONS.c.id == conversation_id
            )
            if postgres:
                # A former home frozen in the middle of a transaction holds this row:
                # give up soon (Unavailable) and let the caller try again, by which
                # time that transaction has been ended.
                connection.execute(text(f"SET LOCAL lock_timeout = {TAKE_HOME_LOCK_MS:d}"))
                statement = statement.with_for_update()
            row = connection.execute(statement).first()
            if row is None:
                return None
            home = row[0]
            if (
                alive_within is not None
                and home not in (None, owner)
                and self._home_alive(connection, str(home), owner, alive_within)
            ):
                return str(home)
            found = connection.execute(
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.id == conversation_id)
                .values(home_fence=CONVERSATIONS.c.home_fence + 1, home_owner=owner)
                .returning(CONVERSATIONS.c.home_fence)
            ).scalar_one()
        return int(found)

    @staticmethod
    def _home_alive(connection: Connection, home: str, owner: str, alive_within: float) -> bool:
        seen = connection.execute(
            select(NODES.c.seen_at).where(NODES.c.owner == home)
        ).scalar_one_or_none()
        seen_at = None if seen is None else seen.timestamp()
        return home_is_alive(home, owner, seen_at, alive_within)

    def _end_dead_homes_transactions(
        self, conversation_id: str, owner: str, alive_within: float
    ) -> None:
        """End the open transactions of the conversation's recorded home if it is dead.

        A node that stops mid-transaction (SIGSTOP, a VM paused, a lost machine whose
        TCP has not timed out) holds its row locks until PostgreSQL's idle timeout, or,
        if its session was not idle (a statement under way, a pipeline not yet synced),
        until it wakes; its transactions queued behind those then take their turn and
        hold them again.
        Its sessions carry its owner as ``application_name`` (see
        :func:`~server.storage.engine.create_engine_for`), so the taker ends exactly
        the open sessions of a home whose heartbeat has lapsed. Without the right
        to do so (another role), it waits for the idle timeout instead.
        """
        with self._engine.connect() as connection:
            home = connection.execute(
                select(CONVERSATIONS.c.home_owner).where(CONVERSATIONS.c.id == conversation_id)
            ).scalar_one_or_none()
            if home in (None, owner) or self._home_alive(
                connection, str(home), owner, alive_within
            ):
                return
            try:
                ended = connection.execute(_END_DEAD_HOMES_SESSIONS, {"home": home}).all()
            except (SQLAlchemyError, self._dbapi_error) as exc:
                error = type(exc).__name__
                log.warning("dead home's transactions not ended", extra={"error": error})
                return
            if ended:
                log.info("ended a dead home's transactions", extra={"count": len(ended)})

    def _commit_sync(
        self,
        changes: Changes,
        fences: Sequence[Fence] | None = None,
        *,
        held: Connection | None = None,
    ) -> list[StreamEvent]:
        counts = Counter(event.chat_id for event in changes.events)
        new_chats = {chat.id for chat in changes.chats}
        if fences is None:
            fences = [] if changes.fence is None else [changes.fence]
        with self._writing(held) as connection:
            if fences:
                _check_fences(connection, fences)
            rows = self._rows
            if changes.chats:
                rows.insert(connection, CHATS, [chat_values(c) for c in changes.chats])
                # A chat created here has no other writer yet: its head starts where
                # this commit's events end, with no UPDATE needed.
                rows.insert(
                    connection,
                    CHAT_HEADS,
                    [{"chat_id": c.id, "last_seq": counts.get(c.id, 0)} for c in changes.chats],
                )
            if changes.tasks:
                # The last version of a task wins; sorted ids make concurrent upserts of
                # the same tasks lock their rows in one order (no deadlock on PostgreSQL).
                latest = {task.id: task for task in changes.tasks}
                rows.upsert(connection, TASKS, [task_values(latest[k]) for k in sorted(latest)])
            existing = {c: n for c, n in counts.items() if c not in new_chats}
            last_seqs = {c: counts[c] for c in counts if c in new_chats}
            if self._sqlite:
                # SQLite has one writer at a time: every head moves in one statement.
                last_seqs.update(_advance_heads(connection, existing))
            else:
                # Sorted for the same reason: committers lock shared heads in one order.
                for chat_id in sorted(existing):
                    last_seqs[chat_id] = _advance_head(connection, chat_id, existing[chat_id])
            next_seq = {c: last_seqs[c] - counts[c] + 1 for c in counts}
            # Taken while the heads are held, so ts never goes back as seq goes up.
            now = utcnow()
            numbered = []
            for new in changes.events:
                seq = next_seq[new.chat_id]
                next_seq[new.chat_id] = seq + 1
                numbered.append((new.chat_id, seq, new.body))
            events, event_rows = numbered_rows(numbered, now)
            rows.insert(connection, EVENTS, event_rows)
        return events


def _check_fences(connection: Connection, fences: Sequence[Fence]) -> None:
    """Raise :class:`Fenced` unless every fence is its conversation's current number.

    In the commit's own transaction: on PostgreSQL the rows are read ``FOR SHARE``, so
    a takeover's ``take_home`` (which updates them) waits for this commit, and a commit
    that waited for a takeover reads the new number. SQLite has one writer anyway.
    """
    wanted: dict[str, int] = {}
    for fence in fences:
        if wanted.setdefault(fence.conversation_id, fence.number) != fence.number:
            raise Fenced()  # two homes in one batch: one of them is stale
    ids = sorted(wanted)
    if connection.dialect.name == "sqlite":
        # On the driver's own cursor: a Core select with an IN list is compiled afresh
        # each time, which cost more than the rest of a small commit.
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            rows = cursor.execute(
                "SELECT id, home_fence FROM conversations"
                f" WHERE id IN ({', '.join('?' for _ in ids)})",
                ids,
            ).fetchall()
        finally:
            cursor.close()
    else:
        statement = (
            select(CONVERSATIONS.c.id, CONVERSATIONS.c.home_fence)
            .where(CONVERSATIONS.c.id.in_(ids))
            .with_for_update(read=True)
        )
        rows = list(connection.execute(statement).all())
    found = {str(cid): int(number) for cid, number in rows}
    if any(found.get(cid) != number for cid, number in wanted.items()):
        raise Fenced()


def _merged(batch: Sequence[Changes]) -> tuple[Changes, list[Fence]]:
    """*batch* as one commit, and the fences of its commits."""
    merged = Changes(
        chats=[chat for changes in batch for chat in changes.chats],
        tasks=[task for changes in batch for task in changes.tasks],
        events=[event for changes in batch for event in changes.events],
    )
    return merged, [changes.fence for changes in batch if changes.fence is not None]


def _split(events: list[StreamEvent], batch: Sequence[Changes]) -> list[list[StreamEvent]]:
    """Hand each commit of *batch* its own events, in the order they were appended."""
    parts, start = [], 0
    for changes in batch:
        end = start + len(changes.events)
        parts.append(events[start:end])
        start = end
    return parts


def _pool_capacity(engine: Engine) -> int:
    pool = engine.pool
    if isinstance(pool, QueuePool):
        return max(1, pool.size())
    return 1


_HEADS_PER_STATEMENT = 400
"""Two parameters a head: well inside SQLite's limit of 32,766 per statement."""


def _advance_heads(connection: Connection, counts: dict[str, int]) -> dict[str, int]:
    """Reserve ``counts[chat]`` seqs of each chat in as few statements as possible.

    Returns each chat's new last seq; raises :class:`NotFound` if a chat has no head.
    """
    found: dict[str, int] = {}
    chats = sorted(counts)
    for start in range(0, len(chats), _HEADS_PER_STATEMENT):
        part = chats[start : start + _HEADS_PER_STATEMENT]
        values = ", ".join(f"(:c{i}, :n{i})" for i in range(len(part)))
        params: dict[str, object] = {}
        for i, chat_id in enumerate(part):
            params[f"c{i}"] = chat_id
            params[f"n{i}"] = counts[chat_id]
        # On the driver's own cursor (sqlite3 takes :name parameters): SQLAlchemy's
        # compile and execution context would cost more than the statement.
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            rows = cursor.execute(
                f"WITH moves(chat_id, n) AS (VALUES {values}) "
                "UPDATE chat_heads SET last_seq = last_seq + "
                "(SELECT n FROM moves WHERE moves.chat_id = chat_heads.chat_id) "
                "WHERE chat_id IN (SELECT chat_id FROM moves) "
                "RETURNING chat_id, last_seq",
                params,
            ).fetchall()
        finally:
            cursor.close()
        found.update({str(chat_id): int(last) for chat_id, last in rows})
    if len(found) != len(counts):
        raise NotFound("chat")
    return found


def _advance_head(connection: Connection, chat_id: str, count: int) -> int:
    """Reserve *count* seqs of *chat_id*; return the last. Locks the head until commit."""
    last = connection.execute(
        update(CHAT_HEADS)
        .where(CHAT_HEADS.c.chat_id == chat_id)
        .values(last_seq=CHAT_HEADS.c.last_seq + count)
        .returning(CHAT_HEADS.c.last_seq)
    ).scalar_one_or_none()
    if last is None:
        raise NotFound("chat")
    return int(last)


def upsert(connection: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Insert *rows* into *table*, replacing any row with the same primary key."""
    connection.execute(upsert_statement(connection.dialect.name, table), list(rows))

"""Where audit records are kept: the backend interface and its in-memory twin.

A backend owns the one thing that makes the chain a chain: appends are serialized.
:meth:`AuditBackend.append` reads the head, builds the next record from it and stores
it under a single lock or transaction, so two writers can never build on the same head
and fork the chain; :meth:`AuditBackend.append_many` does the same for several records
at once, each built on the one before. ``server.audit_store`` is the SQL
implementation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from audit.exceptions import ChainConflict, InvalidAuditField
from audit.record import GENESIS_HASH, AuditRecord, check_id

#: Builds the next record from the current head (``None`` for an empty trail).
RecordBuilder = Callable[[AuditRecord | None], AuditRecord]

#: The most records one :meth:`AuditBackend.read` returns.
MAX_PAGE = 10_000


class AuditBackend(Protocol):
    """Storage for one global, append-only chain of audit records.

    Implementations are thread-safe; their methods block, so async callers run them in
    a worker thread. Every method raises :class:`~audit.exceptions.AuditUnavailable`
    when the storage refuses.
    """

    def append(self, build: RecordBuilder) -> AuditRecord:
        """Store ``build(head)`` as the new head, atomically with reading *head*.

        Raises :class:`~audit.exceptions.ChainConflict` if the built record does not
        extend the head (see :func:`check_successor`); whatever *build* raises passes
        through, and nothing is stored.
        """
        ...

    def append_many(self, builds: Sequence[RecordBuilder]) -> list[AuditRecord]:
        """Store the records *builds* make as the new head, in one step: the first built
        on the head, each next one on the record before it.

        All of them are stored, or (whatever is raised, as for :meth:`append`) none.
        """
        ...

    def head(self) -> AuditRecord | None:
        """The last record appended, or ``None`` if the trail is empty."""
        ...

    def read(
        self, *, after_seq: int = 0, workspace_id: str | None = None, limit: int = 500
    ) -> list[AuditRecord]:
        """Up to *limit* records with ``seq > after_seq``, in chain order.

        With *workspace_id*, only that workspace's records (the chain stays global, so
        their ``seq`` values have gaps). Raises :class:`InvalidAuditField` for a bad
        argument.
        """
        ...


def check_successor(head: AuditRecord | None, record: AuditRecord) -> None:
    """Raise :class:`ChainConflict` unless *record* is the next link after *head*."""
    expected_seq = 1 if head is None else head.seq + 1
    expected_prev = GENESIS_HASH if head is None else head.hash
    if record.seq != expected_seq or record.prev_hash != expected_prev:
        raise ChainConflict(
            f"record {record.id} (seq {record.seq}) does not follow the head "
            f"(expected seq {expected_seq})"
        )


def build_chain(head: AuditRecord | None, builds: Sequence[RecordBuilder]) -> list[AuditRecord]:
    """The records *builds* make after *head*, each checked to follow the one before."""
    records = []
    for build in builds:
        record = build(head)
        check_successor(head, record)
        records.append(record)
        head = record
    return records


def check_read_arguments(after_seq: int, workspace_id: str | None, limit: int) -> None:
    """Raise :class:`InvalidAuditField` for arguments no backend should accept."""
    if type(after_seq) is not int or after_seq < 0:
        raise InvalidAuditField("after_seq must be an int >= 0")
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise InvalidAuditField(f"limit must be an int from 1 to {MAX_PAGE}")
    if workspace_id is not None:
        check_id("workspace_id", workspace_id)


class MemoryAuditBackend:
    """An :class:`AuditBackend` in a list, for tests and the embedded demo."""

    def __init__(self) -> None:
        # Held across read-head, build and store: the whole of an append is one step.
        self._lock = threading.Lock()
        self._records: list[AuditRecord] = []

    def append(self, build: RecordBuilder) -> AuditRecord:
        """See :meth:`AuditBackend.append`."""
        (record,) = self.append_many((build,))
        return record

    def append_many(self, builds: Sequence[RecordBuilder]) -> list[AuditRecord]:
        """See :meth:`AuditBackend.append_many`."""
        with self._lock:
            head = self._records[-1] if self._records else None
            records = build_chain(head, builds)
            self._records.extend(records)
            return records

    def head(self) -> AuditRecord | None:
        """See :meth:`AuditBackend.head`."""
        with self._lock:
            return self._records[-1] if self._records else None

    def read(
        self, *, after_seq: int = 0, workspace_id: str | None = None, limit: int = 500
    ) -> list[AuditRecord]:
        """See :meth:`AuditBackend.read`."""
        check_read_arguments(after_seq, workspace_id, limit)
        with self._lock:
            # seq n sits at index n - 1: the chain here is gapless by construction.
            tail = self._records[after_seq:]
        if workspace_id is None:
            return tail[:limit]
        return [r for r in tail if r.workspace_id == workspace_id][:limit]

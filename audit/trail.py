"""The audit trail: turns events into hash-chained records on a backend."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TextIO

from audit.backend import AuditBackend, RecordBuilder
from audit.export import export_jsonl
from audit.record import GENESIS_HASH, AuditEvent, AuditRecord, check_node_id
from audit.verify import VerifyReport, verify_chain


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def new_audit_id() -> str:
    """An unguessable record id (128 random bits): ``aud_…``."""
    return f"aud_{secrets.token_urlsafe(16)}"


class AuditTrail:
    """Appends :class:`AuditEvent`\\ s to *backend* as one hash-chained sequence.

    *node_id* names this node in every record it writes (FHIR's ``source``). The
    methods block; async callers run them in a worker thread.
    """

    def __init__(
        self,
        backend: AuditBackend,
        *,
        node_id: str,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_audit_id,
    ) -> None:
        check_node_id(node_id)
        self._backend = backend
        self._node_id = node_id
        self._clock = clock
        self._new_id = new_id

    def record(self, event: AuditEvent) -> AuditRecord:
        """Append *event* and return its record, already stored.

        Raises :class:`~audit.exceptions.AuditUnavailable` if the backend refused and
        :class:`~audit.exceptions.InvalidAuditField` if the clock or id is malformed;
        either way nothing was stored, and the read it guards must not happen.
        """
        (record,) = self.record_many((event,))
        return record

    def record_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append *events*, in order, in one step, and return their records.

        All are stored or, raising as :meth:`record` does, none is.
        """
        return self._backend.append_many([self._builder(event) for event in events])

    def _builder(self, event: AuditEvent) -> RecordBuilder:
        record_id = self._new_id()

        def build(head: AuditRecord | None) -> AuditRecord:
            # The clock is read under the backend's lock, so on one node ``recorded``
            # never goes backwards along the chain.
            return AuditRecord.seal(
                event,
                id=record_id,
                seq=1 if head is None else head.seq + 1,
                recorded=self._clock(),
                node_id=self._node_id,
                prev_hash=GENESIS_HASH if head is None else head.hash,
            )

        return build

    def head(self) -> AuditRecord | None:
        """The newest record, or ``None``. Raises ``AuditUnavailable``."""
        return self._backend.head()

    def read(
        self, *, after_seq: int = 0, workspace_id: str | None = None, limit: int = 500
    ) -> list[AuditRecord]:
        """One page of records with ``seq > after_seq``, oldest first (see
        :meth:`AuditBackend.read`). Raises ``AuditUnavailable`` or ``InvalidAuditField``.
        """
        return self._backend.read(after_seq=after_seq, workspace_id=workspace_id, limit=limit)

    def iter_records(
        self, *, after_seq: int = 0, workspace_id: str | None = None, page_size: int = 500
    ) -> Iterator[AuditRecord]:
        """Every record with ``seq > after_seq``, oldest first, read a page at a time.

        Raises ``AuditUnavailable`` (possibly part-way) or ``InvalidAuditField``.
        """
        while True:
            page = self.read(after_seq=after_seq, workspace_id=workspace_id, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after_seq = page[-1].seq

    def verify(self) -> VerifyReport:
        """Verify the whole chain from seq 1 (see :func:`audit.verify.verify_chain`)."""
        return verify_chain(self.iter_records())

    def export_jsonl(
        self, out: TextIO, *, since: datetime | None = None, workspace_id: str | None = None
    ) -> int:
        """Write records as JSON Lines to *out* (see :func:`audit.export.export_jsonl`)."""
        return export_jsonl(self.iter_records(workspace_id=workspace_id), out, since=since)

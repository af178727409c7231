"""The audit trail: who read or changed which background task, when, how, with what outcome.

Every read of a task's contents writes a ``PHI_RECORD_VIEWED`` record before the
contents leave the server, every refused attempt an ``ACCESS_DENIED``; starting,
instructing and cancelling a task are recorded too. Records follow FHIR AuditEvent and
hold ids, enumerations and route templates only, never the contents
(:mod:`audit.record`).

Records form one global chain: each has the next ``seq`` (1, 2, 3...) and the SHA-256
of the one before it, and the backend appends them one at a time under its own lock, so
concurrent writers cannot fork the chain (:mod:`audit.backend`). :func:`verify_chain`
detects an edited, missing or reordered record and names the first;
:func:`export_jsonl` writes the trail as JSON Lines.

:mod:`audit.checkpoints` signs the chain's head with a key the database never holds,
so that a truncated tail or a chain rewritten with fresh hashes is found too.

This package imports nothing of the project's, and only the standard library (and
``cryptography``, for the checkpoints' signatures); the SQL backend lives in
``server.audit_store``.
"""

from __future__ import annotations

from audit.backend import AuditBackend, MemoryAuditBackend, RecordBuilder, check_successor
from audit.exceptions import AuditError, AuditUnavailable, ChainConflict, InvalidAuditField
from audit.export import export_jsonl, read_jsonl
from audit.record import (
    GENESIS_HASH,
    ActorKind,
    AuditAction,
    AuditEvent,
    AuditOutcome,
    AuditReason,
    AuditRecord,
    AuditType,
)
from audit.trail import AuditTrail
from audit.verify import ChainProblem, VerifyReport, verify_chain

__all__ = [
    "GENESIS_HASH",
    "ActorKind",
    "AuditAction",
    "AuditBackend",
    "AuditError",
    "AuditEvent",
    "AuditOutcome",
    "AuditReason",
    "AuditRecord",
    "AuditTrail",
    "AuditType",
    "AuditUnavailable",
    "ChainConflict",
    "ChainProblem",
    "InvalidAuditField",
    "MemoryAuditBackend",
    "RecordBuilder",
    "VerifyReport",
    "check_successor",
    "export_jsonl",
    "read_jsonl",
    "verify_chain",
]

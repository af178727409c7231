"""The audit trail's exceptions.

::

    AuditError
    ├── InvalidAuditField   a field broke its type, enumeration or character pattern;
    │                       nothing was written (also a ValueError)
    ├── ChainConflict       a built record does not extend the current head; nothing
    │                       was written
    └── AuditUnavailable    the backend could not append or read; the read the record
                            guards must not happen (fail closed)

Messages name fields, sequence numbers and record ids, never a rejected value: a value
that failed validation may be exactly the free text the trail must not hold.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error the audit trail raises on purpose."""


class InvalidAuditField(AuditError, ValueError):
    """A field is of the wrong type, outside its enumeration or pattern, or missing."""


class ChainConflict(AuditError):
    """A record's ``seq`` or ``prev_hash`` does not follow the head it was built on."""


class AuditUnavailable(AuditError):
    """The backend refused (unreachable, locked, failed); the caller must fail closed."""

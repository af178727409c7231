"""JSON Lines export of the audit trail, and reading an export back.

One record per line, as :meth:`AuditRecord.to_dict` with sorted keys and no spaces,
so an export can be re-verified with :func:`audit.verify.verify_chain`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TextIO

from audit.exceptions import InvalidAuditField
from audit.record import AuditRecord


def to_json_line(record: AuditRecord) -> str:
    """*record* as one line of JSON, newline included."""
    return json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"


def export_jsonl(
    records: Iterable[AuditRecord], out: TextIO, *, since: datetime | None = None
) -> int:
    """Write *records* to *out* as JSON Lines and return how many were written.

    With *since* (timezone-aware), the export starts at the first record recorded at or
    after it and then keeps every later record in chain order, even one whose clock
    (another node's) reads a little earlier: the export stays an unbroken stretch of
    the chain, which :func:`~audit.verify.verify_chain` can check. Raises
    :class:`InvalidAuditField` for a naive *since*.
    """
    if since is not None and since.utcoffset() is None:
        raise InvalidAuditField("since must be a timezone-aware datetime")
    started = since is None
    written = 0
    for record in records:
        if not started and since is not None and record.recorded < since:
            continue
        started = True
        out.write(to_json_line(record))
        written += 1
    return written


def read_jsonl(lines: Iterable[str]) -> Iterator[AuditRecord]:
    """The records of an export, in file order; blank lines are skipped.

    Raises :class:`InvalidAuditField` naming the first malformed line.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidAuditField(f"line {number} is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidAuditField(f"line {number} is not a JSON object")
        try:
            yield AuditRecord.from_dict(data)
        except InvalidAuditField as exc:
            raise InvalidAuditField(f"line {number}: {exc}") from None

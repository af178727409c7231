"""Verify a chain of audit records: nothing edited, removed, inserted or reordered.

Each record's ``hash`` is recomputed from its contents, its ``prev_hash`` must be the
hash of the record before it, and ``seq`` must grow by exactly one from the start.
The check streams: it holds two records at a time, however long the trail.

A chain cannot prove its own tail: removing the newest records leaves a valid, shorter
chain. Keep the report's ``last_seq`` and ``head_hash`` somewhere else (a ticket, a log
shipped off the node) and compare later; or verify only what came after them with
``verify_chain(new_records, start_seq=last_seq + 1, prev_hash=head_hash)``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from audit.record import GENESIS_HASH, AuditRecord


class ChainProblem(enum.StrEnum):
    """Why verification stopped."""

    #: The record's contents no longer match its hash.
    EDITED = "edited"
    #: One or more sequence numbers are absent: records were deleted.
    MISSING = "missing"
    #: A record arrives before a lower-numbered one, or after a higher-numbered one.
    REORDERED = "reordered"
    #: The same record appears twice in a row.
    DUPLICATED = "duplicated"
    #: The record is intact and numbered right but does not link to the one before it:
    #: that one was replaced, or removed and the rest renumbered and re-hashed.
    BROKEN_LINK = "broken_link"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify_chain`.

    ``checked`` records verified before the first problem (all of them when ``ok``);
    ``last_seq`` and ``head_hash`` describe the last good record (``start_seq - 1`` and
    the starting ``prev_hash`` if none). On failure, ``seq`` and ``record_id`` name the
    first bad record; ``record_id`` is ``None`` when it is missing altogether.
    """

    ok: bool
    checked: int
    last_seq: int
    head_hash: str
    problem: ChainProblem | None = None
    seq: int | None = None
    record_id: str | None = None
    detail: str = ""


def verify_chain(
    records: Iterable[AuditRecord], *, start_seq: int = 1, prev_hash: str = GENESIS_HASH
) -> VerifyReport:
    """Check *records*, in the order given, as a chain starting at *start_seq*.

    By default the chain must start at the trail's first record; pass *start_seq* and
    *prev_hash* (a trusted earlier report's ``last_seq + 1`` and ``head_hash``) to
    check a later stretch. Never raises for a bad chain: the report says what is wrong.
    """
    records_iter = iter(records)
    checked = 0
    expected_seq = start_seq
    expected_prev = prev_hash
    previous: AuditRecord | None = None

    def bad(problem: ChainProblem, seq: int, record_id: str | None, detail: str) -> VerifyReport:
        return VerifyReport(
            ok=False,
            checked=checked,
            last_seq=expected_seq - 1,
            head_hash=expected_prev,
            problem=problem,
            seq=seq,
            record_id=record_id,
            detail=detail,
        )

    for record in records_iter:
        if record.computed_hash() != record.hash:
            return bad(
                ChainProblem.EDITED,
                record.seq,
                record.id,
                f"record {record.id} (seq {record.seq}) does not match its hash",
            )
        if record.seq > expected_seq:
            # A gap is a deletion, unless the missing record comes right after: a swap.
            following = next(records_iter, None)
            if following is not None and following.seq == expected_seq:
                return bad(
                    ChainProblem.REORDERED,
                    record.seq,
                    record.id,
                    f"seq {record.seq} comes before seq {expected_seq}",
                )
            return bad(
                ChainProblem.MISSING,
                expected_seq,
                None,
                f"seq {expected_seq} to {record.seq - 1} missing; "
                f"the next present is seq {record.seq} ({record.id})",
            )
        if record.seq < expected_seq:
            if previous is not None and record.hash == previous.hash:
                return bad(
                    ChainProblem.DUPLICATED,
                    record.seq,
                    record.id,
                    f"record {record.id} (seq {record.seq}) appears twice",
                )
            return bad(
                ChainProblem.REORDERED,
                record.seq,
                record.id,
                f"seq {record.seq} comes after seq {expected_seq - 1}",
            )
        if record.prev_hash != expected_prev:
            return bad(
                ChainProblem.BROKEN_LINK,
                record.seq,
                record.id,
                f"record {record.id} (seq {record.seq}) does not link to the record "
                f"before it: that one was replaced or removed",
            )
        checked += 1
        expected_seq += 1
        expected_prev = record.hash
        previous = record

    return VerifyReport(
        ok=True,
        checked=checked,
        last_seq=expected_seq - 1,
        head_hash=expected_prev,
        detail=f"{checked} records, chain intact",
    )

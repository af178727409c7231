"""JSON Lines export: one record a line, re-verifiable, optionally from a time on."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import datetime, timedelta

import pytest

from audit import (
    AuditRecord,
    AuditTrail,
    ChainProblem,
    InvalidAuditField,
    export_jsonl,
    read_jsonl,
    verify_chain,
)


def test_export_writes_one_sorted_compact_line_per_record(chain: list[AuditRecord]) -> None:
    out = io.StringIO()
    assert export_jsonl(chain, out) == 5
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    first = json.loads(lines[0])
    assert first == chain[0].to_dict()
    assert lines[0] == json.dumps(first, sort_keys=True, separators=(",", ":"))


def test_an_export_reads_back_and_verifies(trail: AuditTrail, chain: list[AuditRecord]) -> None:
    out = io.StringIO()
    trail.export_jsonl(out)
    assert list(read_jsonl(io.StringIO(out.getvalue()))) == chain
    assert verify_chain(read_jsonl(out.getvalue().splitlines())).ok


def test_an_edited_export_fails_verification(chain: list[AuditRecord]) -> None:
    out = io.StringIO()
    export_jsonl(chain, out)
    lines = out.getvalue().splitlines()
    lines[3] = lines[3].replace('"outcome":"0"', '"outcome":"8"')
    report = verify_chain(read_jsonl(lines))
    assert (report.problem, report.seq) == (ChainProblem.EDITED, 4)


def test_since_starts_at_the_first_record_recorded_then(chain: list[AuditRecord]) -> None:
    out = io.StringIO()
    assert export_jsonl(chain, out, since=chain[2].recorded) == 3
    exported = list(read_jsonl(out.getvalue().splitlines()))
    assert [r.seq for r in exported] == [3, 4, 5]
    assert verify_chain(exported, start_seq=3, prev_hash=chain[1].hash).ok
    assert export_jsonl(chain, io.StringIO(), since=chain[2].recorded - timedelta(seconds=1)) == 3
    assert export_jsonl(chain, io.StringIO(), since=chain[-1].recorded + timedelta(1)) == 0


def test_since_keeps_a_later_record_with_an_earlier_clock(chain: list[AuditRecord]) -> None:
    # Another node's clock may lag; the export stays an unbroken stretch of the chain.
    lagging = dataclasses.replace(chain[4], recorded=chain[0].recorded)
    assert export_jsonl([*chain[:4], lagging], io.StringIO(), since=chain[2].recorded) == 3


def test_since_must_be_timezone_aware(chain: list[AuditRecord]) -> None:
    with pytest.raises(InvalidAuditField, match="since"):
        export_jsonl(chain, io.StringIO(), since=datetime(2025, 3, 1))


def test_trail_export_can_filter_by_workspace(trail: AuditTrail, chain: list[AuditRecord]) -> None:
    out = io.StringIO()
    assert trail.export_jsonl(out, workspace_id="ws_other") == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2 is not JSON"),
        ("[1, 2]", "line 2 is not a JSON object"),
        ('{"id": "aud_1"}', "line 2: record fields differ"),
    ],
)
def test_a_malformed_line_is_named(chain: list[AuditRecord], line: str, message: str) -> None:
    good = json.dumps(chain[0].to_dict())
    with pytest.raises(InvalidAuditField, match=message):
        list(read_jsonl([good, line]))

"""The wire's times (agents.models.rfc3339): RFC 3339, UTC, milliseconds, a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from agents.models import parse_rfc3339, rfc3339

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
)


@given(st.datetimes(min_value=datetime(1000, 1, 2), timezones=ZONES))
def test_written_as_isoformat_writes_it_in_utc(moment: datetime) -> None:
    expected = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    assert rfc3339(moment) == expected.replace("+00:00", "Z")
    back = parse_rfc3339(rfc3339(moment))
    assert back.tzinfo is not None
    assert abs(back - moment) < timedelta(milliseconds=1)


def test_examples() -> None:
    assert rfc3339(datetime(2026, 3, 1, 9, 5, 7, 123999, tzinfo=UTC)) == "2026-03-01T09:05:07.123Z"
    eastern = timezone(timedelta(hours=-5))
    assert rfc3339(datetime(2026, 12, 31, 22, 0, tzinfo=eastern)) == "2027-01-01T03:00:00.000Z"

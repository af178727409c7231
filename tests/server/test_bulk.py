"""The bulk row writers' binding (server.storage.bulk): what the Core would bind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from server.storage.bulk import RowWriter, sqlite_utc_text
from server.storage.tables import EVENTS, TASKS, UtcDateTime

ZONES = st.sampled_from([UTC, timezone(timedelta(hours=-8)), timezone(timedelta(hours=9))])
DIALECT = sqlite.dialect()


def core_chain(value: datetime) -> str:
    """What SQLAlchemy binds for a UtcDateTime column on SQLite."""
    processor = UtcDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert processor is not None
    result = processor(value)
    assert isinstance(result, str)
    return result


@given(st.datetimes(min_value=datetime(1000, 1, 2), timezones=ZONES))
def test_a_time_is_bound_as_the_core_binds_it(moment: datetime) -> None:
    assert sqlite_utc_text(moment) == core_chain(moment)


def test_naive_times_are_refused_and_none_is_null() -> None:
    with pytest.raises(ValueError, match="naive"):
        sqlite_utc_text(datetime(2026, 1, 1))
    assert sqlite_utc_text(None) is None


def test_the_writers_use_it_for_every_time_column() -> None:
    for table in (TASKS, EVENTS):
        writer = RowWriter(DIALECT, table)
        times = {c.name for c in table.columns if isinstance(c.type, UtcDateTime)}
        assert times
        assert {name for name, p in writer._processors if p is sqlite_utc_text} == times

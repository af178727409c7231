"""The slow-client guard's bookkeeping, without sockets (server.slow_clients)."""

from __future__ import annotations

import pytest

from server.serving import connection_limits
from server.settings import Settings
from server.slow_clients import (
    LOG_EVERY_S,
    ConnectionLimits,
    DropReason,
    WaitingForHeads,
    guarded_http_protocol,
)


def test_a_new_connection_over_the_cap_closes_the_one_that_waited_longest() -> None:
    waiting = WaitingForHeads(cap=3)
    assert [waiting.add(name) for name in "abc"] == [[], [], []]
    # b sends its head; d and e arrive: the oldest still waiting goes first.
    waiting.discard("b")
    assert waiting.add("d") == []
    assert waiting.add("e") == ["a"]
    # c answers a request and waits for its next head: it is the newest again.
    waiting.discard("c")
    assert waiting.add("c") == []
    assert waiting.add("f") == ["d"]
    assert len(waiting) == 3
    assert "a" not in waiting
    assert "c" in waiting
    assert waiting.statistics()["waiting"] == 3


def test_drops_are_logged_at_once_then_at_most_once_per_period() -> None:
    waiting = WaitingForHeads(cap=1)
    assert waiting.note_dropped(DropReason.EVICTED, now=100.0) == {"evicted": 1}
    assert waiting.note_dropped(DropReason.EVICTED, now=101.0) is None
    assert waiting.note_dropped(DropReason.HEAD_TIMEOUT, now=102.0) is None
    later = 100.0 + LOG_EVERY_S
    assert waiting.note_dropped(DropReason.EVICTED, now=later) == {
        "evicted": 2,
        "head_timeout": 1,
    }
    stats = waiting.statistics()
    assert (stats["dropped_evicted"], stats["dropped_head_timeout"]) == (3, 1)


def test_the_cap_follows_the_open_files_limit() -> None:
    settings = Settings(max_waiting_requests=256)
    assert connection_limits(settings, 65_536).max_waiting == 256
    assert connection_limits(settings, 256).max_waiting == 64
    assert connection_limits(settings, 10).max_waiting == 8


def test_each_server_gets_its_own_count_and_limits_must_be_positive() -> None:
    one = guarded_http_protocol(ConnectionLimits())
    two = guarded_http_protocol(ConnectionLimits())
    assert one.waiting is not two.waiting  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="positive"):
        guarded_http_protocol(ConnectionLimits(head_timeout=0))
    with pytest.raises(ValueError, match="at least 1"):
        WaitingForHeads(cap=0)


def test_a_sweep_is_due_once_per_overflow_and_closes_the_oldest() -> None:
    waiting = WaitingForHeads(cap=2)
    assert [waiting.hold(name) for name in "ab"] == [False, False]
    # Over the cap: one sweep is due, however many more come before it runs.
    assert waiting.hold("c") is True
    assert waiting.hold("d") is False
    # d's head came meanwhile: it is not among those let go.
    waiting.discard("d")
    assert waiting.sweep() == ["a"]
    assert len(waiting) == 2
    assert waiting.hold("e") is True

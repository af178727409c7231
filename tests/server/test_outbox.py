"""The socket's outbox (server.outbox), without a socket: order, bounds, wake-ups."""

from __future__ import annotations

import anyio
import pytest

from server.outbox import Outbox

pytestmark = pytest.mark.anyio


async def test_items_come_out_in_order_once_and_the_writer_is_woken() -> None:
    outbox: Outbox[int] = Outbox(10)
    taken: list[int] = []

    async def writer() -> None:
        while len(taken) < 5:
            await outbox.wait()
            taken.extend(outbox.take_all())

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await anyio.sleep(0.01)
        assert outbox.put(1)
        await anyio.sleep(0.01)
        for n in (2, 3, 4, 5):  # a burst: taken at once, in order
            assert outbox.put(n)
    assert taken == [1, 2, 3, 4, 5]
    assert len(outbox) == 0


async def test_a_full_outbox_takes_nothing_more_until_it_is_taken_from() -> None:
    outbox: Outbox[str] = Outbox(2)
    assert outbox.put("a")
    assert outbox.put("b")
    assert not outbox.put("c")
    assert outbox.statistics() == {"waiting": 2, "capacity": 2}
    with anyio.fail_after(1):
        await outbox.wait()  # something waits: no wait at all
    assert outbox.take_all() == ["a", "b"]
    assert outbox.put("c")
    assert outbox.take_all() == ["c"]
    assert outbox.take_all() == []


async def test_a_closed_outbox_drops_what_waits_and_takes_nothing() -> None:
    outbox: Outbox[int] = Outbox(3)
    outbox.put(1)
    outbox.close()
    assert len(outbox) == 0
    assert not outbox.put(2)
    with pytest.raises(ValueError, match="at least one"):
        Outbox(0)

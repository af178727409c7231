"""A socket's outbox: what waits to be written to one client, in order.

Everything a socket sends goes through it — the live events the bus hands over (from
whatever task published them), and the socket's own answers (``ack``, ``result``,
``error``, ``pong``) — so that one writer takes them all, in the order they came, and
writes each burst at once. Putting never blocks and never awaits: the bus calls
:meth:`Outbox.put` from the publisher's task, and a full outbox is the caller's to
act on (the socket closes 4001 and the client resumes from its last ``seq``).

Invariants:

* At most ``capacity`` items wait; the buffer holds only what waits (it grows only as
  far as it is used, and shrinks as the writer takes).
* Items come out in the order they went in; each exactly once.
* After :meth:`close`, nothing more goes in.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import anyio

_T = TypeVar("_T")


class Outbox(Generic[_T]):
    """A bounded FIFO with a wake-up for its one reader."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an outbox holds at least one item")
        self.capacity = capacity
        # A list, swapped for a new one when taken: an idle socket's holds 56 bytes (a
        # deque holds a block of 64 slots, about 600, from the start).
        self._items: list[_T] = []
        # The reader's wake-up, made only when it waits on an empty outbox.
        self._ready: anyio.Event | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: _T) -> bool:
        """Queue *item*; ``False`` (and nothing queued) if full or closed."""
        if self._closed or len(self._items) >= self.capacity:
            return False
        self._items.append(item)
        ready = self._ready
        if ready is not None:
            self._ready = None
            ready.set()
        return True

    async def wait(self) -> None:
        """Return once an item waits (at once if one does)."""
        if not self._items:
            if self._ready is None:
                self._ready = anyio.Event()
            await self._ready.wait()

    def take_all(self) -> list[_T]:
        """Everything that waits, oldest first; the outbox is empty after."""
        items, self._items = self._items, []
        return items

    def close(self) -> None:
        """Take no more items (those waiting are dropped)."""
        self._closed = True
        self._items = []

    def statistics(self) -> dict[str, int]:
        return {"waiting": len(self._items), "capacity": self.capacity}

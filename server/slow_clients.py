"""Slow clients: deadlines for a request's head and body, and a cap on connections
that have not sent a complete request head.

uvicorn times out only idle keep-alive connections (``timeout_keep_alive``, armed after
a response). A connection that sends part of a request head and then a byte now and
then (slowloris), or a head and then a body that never ends, holds a file descriptor
and a parser for as long as it likes; ``limit_concurrency`` does not help, since it
answers 503 only once a head is complete and counts the half-open connections among
the busy ones. With enough of them the process runs out of descriptors, ``accept``
fails, and every new request, ``/healthz`` included, goes unanswered.

So the HTTP protocol uvicorn runs is :func:`guarded_http_protocol`'s subclass of its
own (httptools) protocol, which adds:

- a **head deadline**: from the moment a connection is made, or has answered a request
  and waits for the next, its head must be complete within ``head_timeout`` (408, then
  closed); a head over ``max_head_bytes`` is refused at once (431);
- a **body deadline**: once a head is complete, its body must be complete within
  ``body_timeout`` (408 if no response was started, then closed);
- a **cap** on connections waiting for a head (:class:`WaitingForHeads`): when new
  ones take it over the cap, those that have waited longest are closed (after
  :data:`SETTLE_S`, so that the heads of the new ones that came with theirs are read
  first). A well-behaved client sends its head as soon as it connects, so it leaves
  the set at once; a slow one is the oldest.

WebSocket upgrades are requests like others until their head is complete; after the
upgrade the socket's own ``hello`` deadline, and a cap like the one above on sockets
waiting for their hello, apply (``server.sockets``), and a closed socket whose client
does not answer the close is dropped after :data:`WEBSOCKET_CLOSE_TIMEOUT_S`.
Drops are logged at WARNING, at most one line per :data:`LOG_EVERY_S` with the counts
by reason, so a flood does not flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger(__name__)

#: At most one "slow clients dropped" line per this many seconds.
LOG_EVERY_S = 10.0
#: How long connections over the cap have to start their head before the oldest go.
SETTLE_S = 0.05
#: How long a closed WebSocket waits for the client's close frame before the
#: connection is dropped (uvicorn waits 10 s: a silent client would hold its descriptor).
WEBSOCKET_CLOSE_TIMEOUT_S = 2.0

_RESPONSES = {
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
}


class DropReason(StrEnum):
    """Why a connection was closed before its request was complete."""

    HEAD_TIMEOUT = "head_timeout"
    BODY_TIMEOUT = "body_timeout"
    HEAD_TOO_LARGE = "head_too_large"
    EVICTED = "evicted"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a request's head and body may take, and how many connections may wait
    for a head at once."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0
    max_waiting: int = 256
    max_head_bytes: int = 65_536


class WaitingForHeads:
    """The connections that have not sent a complete request head, oldest first.

    Sans-I/O: it says which connections to close, and when to log; closing is the
    protocol's. Invariant: after :meth:`add` or :meth:`sweep` returns, at most ``cap``
    connections are held (the ones returned are no longer held).
    """

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        # A dict keeps insertion order: the first key has waited longest.
        self._waiting: dict[object, None] = {}
        self._dropped: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._logged_at: float | None = None
        self._sweep_due = False

    def add(self, connection: object) -> list[object]:
        """Hold *connection* (newest); return the oldest ones to close to keep the cap."""
        self.hold(connection)
        return self.sweep()

    def hold(self, connection: object) -> bool:
        """Hold *connection* (newest); whether a :meth:`sweep` is now due (the set is over
        its cap and no sweep was due yet)."""
        self._waiting.pop(connection, None)
        self._waiting[connection] = None
        if len(self._waiting) > self.cap and not self._sweep_due:
            self._sweep_due = True
            return True
        return False

    def sweep(self) -> list[object]:
        """Let go of the oldest connections beyond the cap; return them, to be closed."""
        self._sweep_due = False
        evicted: list[object] = []
        while len(self._waiting) > self.cap:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            evicted.append(oldest)
        return evicted

    def discard(self, connection: object) -> None:
        """*connection* sent its head, or is gone."""
        self._waiting.pop(connection, None)

    def __contains__(self, connection: object) -> bool:
        return connection in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def note_dropped(self, reason: DropReason, now: float) -> dict[str, int] | None:
        """Count a drop; return the counts to log since the last line, if one is due."""
        self._dropped[reason] += 1
        self._unlogged[reason] += 1
        if self._logged_at is not None and now - self._logged_at < LOG_EVERY_S:
            return None
        self._logged_at = now
        counts = dict(self._unlogged)
        self._unlogged.clear()
        return counts

    def statistics(self) -> dict[str, int]:
        """Connections waiting now, the cap, and drops by reason since start."""
        return {
            "waiting": len(self._waiting),
            "cap": self.cap,
            **{f"dropped_{reason}": self._dropped[reason] for reason in DropReason},
        }


class _GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and the cap described above.

    The class attributes are set by :func:`guarded_http_protocol`, once per server.
    """

    limits: ConnectionLimits
    waiting: WaitingForHeads

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self in self.waiting:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._drop(DropReason.HEAD_TOO_LARGE, 431)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    # -- parser callbacks ------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        if not upgrading and not self.transport.is_closing():
            # Cancelled by on_message_complete, which a body-less request reaches at once.
            self._deadline = self.loop.call_later(
                self.limits.body_timeout, self._drop, DropReason.BODY_TIMEOUT, 408
            )

    def on_message_complete(self) -> None:
        self._cancel_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer when the connection goes idle, waiting for
        # the next request (not when a pipelined one is already parsed).
        if self.timeout_keep_alive_task is not None:
            self._wait_for_head()

    # -- the guard -------------------------------------------------------------------

    def _wait_for_head(self) -> None:
        self._cancel_deadline()
        self._head_bytes = 0
        if self.waiting.hold(self):
            # Not at once: connections accepted together (a burst of attackers, and
            # among them a client whose head is already in its buffer) are read first.
            self.loop.call_later(SETTLE_S, _evict_oldest, self.waiting)
        self._deadline = self.loop.call_later(
            self.limits.head_timeout, self._drop, DropReason.HEAD_TIMEOUT, 408
        )

    def _stop_waiting(self) -> None:
        self._cancel_deadline()
        self.waiting.discard(self)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _drop(self, reason: DropReason, status: int | None) -> None:
        self._stop_waiting()
        if self.transport.is_closing():
            return
        # An answer only where none was begun: a response half sent cannot be replaced.
        if status is not None and (self.cycle is None or not self.cycle.response_started):
            self.transport.write(
                _RESPONSES[status] + b"content-length: 0\r\nconnection: close\r\n\r\n"
            )
        self.transport.close()
        counts = self.waiting.note_dropped(reason, time.monotonic())
        if counts is not None:
            log.warning(
                "slow clients dropped",
                extra={
                    "count": sum(counts.values()),
                    **{f"dropped_{name}": n for name, n in counts.items()},
                    "waiting": len(self.waiting),
                    "limit": self.waiting.cap,
                },
            )


def _evict_oldest(waiting: WaitingForHeads) -> None:
    for oldest in waiting.sweep():
        assert isinstance(oldest, _GuardedHttpToolsProtocol)
        oldest._drop(DropReason.EVICTED, None)


#: The guards of this process's HTTP servers (one, but for tests and benches), for
#: :func:`http_statistics`; a guard goes with its server's protocol class.
_GUARDS: weakref.WeakSet[WaitingForHeads] = weakref.WeakSet()


def http_statistics() -> dict[str, int]:
    """Requests waiting for their head now, and dropped by reason since start, summed
    over this process's HTTP servers (``/metrics``)."""
    totals: Counter[str] = Counter({"waiting": 0})
    totals.update({f"dropped_{reason}": 0 for reason in DropReason})
    for guard in list(_GUARDS):
        statistics = guard.statistics()
        del statistics["cap"]
        totals.update(statistics)
    return dict(totals)


def guarded_http_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing *limits*.

    Each call makes a class with its own :class:`WaitingForHeads`, shared by that
    server's connections; raises ``ValueError`` if a limit is not positive.
    """
    if min(limits.head_timeout, limits.body_timeout) <= 0 or limits.max_head_bytes < 1:
        raise ValueError("timeouts and sizes must be positive")
    waiting = WaitingForHeads(limits.max_waiting)
    _GUARDS.add(waiting)
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedHttpToolsProtocol,),
        {"limits": limits, "waiting": waiting},
    )


class QuickCloseWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, waiting :data:`WEBSOCKET_CLOSE_TIMEOUT_S` (not 10 s)
    for a client's answer to a close: a socket closed for never saying hello (or
    evicted, server.sockets) gives its descriptor back soon, even if the client is mute.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = WEBSOCKET_CLOSE_TIMEOUT_S

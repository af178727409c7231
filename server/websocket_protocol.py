"""uvicorn's WebSocket protocol as Switchboard runs it: frames sent in batches.

ASGI sends one frame per ``websocket.send`` message, and uvicorn writes each to the
socket at once: one system call, and one pass through every middleware's send, per
frame. A replay of 10,000 events or a burst of task updates is thousands of writes of a
few hundred bytes each. This protocol adds an ASGI extension, advertised in the scope
as :data:`SEND_BATCH` (``scope["extensions"]``), whose message

    {"type": "switchboard.websocket.send_batch", "texts": [frame, frame, ...]}

sends each text as its own WebSocket frame, in order, with one write. Everything else
about a frame is as ``websocket.send`` would make it, and so is flow control: the
message waits while the transport's buffer is over its high-water mark, as uvicorn's
``websocket.send`` does. A server without the extension (another ASGI server) gets
frames one by one (:func:`send_texts`).

The extension's entry in the scope also holds ``send_now``: a plain function that
writes frames at once from whatever task calls it, if the socket is open and its
transport's buffer is under the high-water mark, and returns whether it did (nothing is
written when it returns ``False``; the caller then sends them the usual way, which
waits). It lets a socket write a live event in the publisher's own task, without a task
of its own to wake (:class:`server.sockets.Session`). A close frame is written without
waiting for room in the buffer, so that a client closed for falling behind (4001) finds
its code after the frames it was sent when it reads them, if it takes them all within
:data:`DRAIN_GRACE_S`; after that it is cut off, rather than holding its descriptor and
buffers for as long as it stays connected.

An idle socket is memory held for as long as the client stays, so the protocol holds
less than uvicorn's: its received messages wait in a list rather than an
``asyncio.Queue`` (three deques of 64 slots each), its writable flag is a flag with a
list of waiters rather than an ``asyncio.Event`` (one more deque), and the upgrade's
request and response are let go once the socket is accepted (with the frame parser
that held the request: a new one is started).

Its own lines, and those of the websockets connection under it, go to
:data:`CONNECTION_LOGGER`, a child of ``uvicorn.error`` that ``server.logs`` keeps at
WARNING: uvicorn says ``"WebSocket …" [accepted]`` and websockets ``connection open`` for
every socket, at INFO, two records whose arguments the JSON lines drop and that say
nothing the access line does not; making them cost a reconnecting crowd a tenth of the
server's time. Its warnings and errors are logged as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from starlette.types import Send
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import InvalidState
from websockets.protocol import State

from server.slow_clients import QuickCloseWebSocketProtocol

SEND_BATCH = "switchboard.websocket.send_batch"
"""The extension's name, and its message's ``type``."""

CONNECTION_LOGGER = "uvicorn.error.websocket"
"""The logger of the protocol and its connection (see the module's docstring)."""

DRAIN_GRACE_S = 30.0
"""How long a closed socket's client has to take what is still buffered for it before
its connection is cut."""


class ReceivedMessages:
    """What ``asyncio.Queue`` does for uvicorn's received ASGI messages, in a list.

    uvicorn pauses reading after each message until the app takes it, so a few wait at
    most: a list is as quick, and an empty one holds 56 bytes, not three deques' 2 KiB.
    """

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] = []

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake_next()

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                if self._items:
                    self._wake_next()  # it was woken for an item it will not take
                raise
        return self._items.pop(0)

    def _wake_next(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return


class WritableFlag:
    """What ``asyncio.Event`` does for uvicorn's writable flag, without its deque."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class BatchingWebSocketProtocol(QuickCloseWebSocketProtocol):
    """uvicorn's (quick-closing) WebSocket protocol, with the :data:`SEND_BATCH` message
    and ``send_now``, holding less per socket (see the module's docstring)."""

    drain_grace = DRAIN_GRACE_S
    """How long a closed socket's client has to take what is still buffered before
    the connection is cut (:meth:`_close_transport`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = self.conn.logger = logging.getLogger(CONNECTION_LOGGER)
        self._parser_at_rest = False
        self.queue = ReceivedMessages()  # type: ignore[assignment]
        self.writable = WritableFlag()  # type: ignore[assignment]
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        if self.handshake_initiated and not self.handshake_complete:
            # Frames before the handshake's answer (a client may not send them): the
            # parser may hold part of one, so it is kept as it is (see _fresh_parser).
            self._parser_at_rest = False
        super().data_received(data)

    def handle_connect(self, event: Any) -> None:
        # Whether the parser, having read the request, waits for a first frame with
        # nothing of one read yet (nothing came after the request).
        self._parser_at_rest = not self.conn.reader.buffer
        super().handle_connect(event)
        # Before the app's task first runs (it was only scheduled): the app sees it.
        scope: Any = getattr(self, "scope", None)
        if scope is not None:  # none when the upgrade was refused
            scope["extensions"][SEND_BATCH] = {"send_now": self.send_now}
        # The request's headers are in the scope; the parsed request is not needed.
        self.request = None  # type: ignore[assignment]

    def _fresh_parser(self) -> None:
        """Start the connection's frame parser anew once the socket is open.

        websockets' parser is a generator that read the upgrade request into a local
        variable before it went on to frames: for as long as the socket stays open it
        holds the request and its headers (about 3 KiB). A new one starts at frames
        (the connection is open); it is made only when the old one waits for a first
        frame with nothing of it read, so nothing the client sent is lost.
        """
        conn = self.conn
        if self._parser_at_rest and not conn.reader.buffer and conn.state is State.OPEN:
            conn.parser = conn.parse()
            next(conn.parser)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The scope would otherwise hold this protocol (through send_now) and the
        # protocol the scope: a cycle that only a full collection frees.
        scope: Any = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(SEND_BATCH, None)

    def _close_now(self, message: Any) -> bool:
        """Send the close frame of an open socket without waiting for room in the buffer
        (uvicorn waits, as for any frame): a client too far behind (closed 4001, server.
        sockets) then finds the code after what it was sent, however late it reads. A
        few bytes more in a buffer about to be let go. Whether it was sent here."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or self.transport.is_closing()
        ):
            return False  # uvicorn's own answer (a 403 before accept, an error after)
        code = message.get("code", 1000)
        reason = message.get("reason", "") or ""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self._close_transport)
        return True

    def _close_transport(self) -> None:
        """No answer to the close came in time: close the connection. What is still
        buffered is flushed as the client reads it; a client that has not taken it all
        :attr:`drain_grace` seconds later is cut off, so that it cannot hold a
        descriptor and its buffers for as long as it stays connected."""
        self.close_timer = None
        buffered = self.transport.get_write_buffer_size()
        self.transport.close()
        if buffered:
            self.loop.call_later(self.drain_grace, self._abort_unless_gone)

    def _abort_unless_gone(self) -> None:
        if not self.disconnected:
            self.transport.abort()

    def send_now(self, texts: Sequence[str]) -> bool:
        """Write *texts* as frames at once if the socket is open and the transport's
        buffer is under its high-water mark; whether it did (if not, nothing was)."""
        if (
            not self.writable.is_set()
            or self.disconnected
            or not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
        ):
            return False
        conn = self.conn
        try:
            for text in texts:
                conn.send_text(text.encode())
        except InvalidState:
            conn.data_to_send()  # nothing of a closing connection is written
            return False
        self.transport.write(b"".join(conn.data_to_send()))
        return True

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and self._close_now(message):
            return
        if message["type"] != SEND_BATCH:
            await super().send(message)
            if message["type"] == "websocket.accept" and self.handshake_complete:
                self.response = None  # type: ignore[assignment]  # sent: not needed again
                self._fresh_parser()
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError(f"Unexpected ASGI message '{SEND_BATCH}' outside an open socket.")
        try:
            for text in message["texts"]:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))


def batches_supported(scope: Any) -> bool:
    """Whether the server under *scope* takes :data:`SEND_BATCH` messages."""
    extensions = scope.get("extensions") or {}
    return SEND_BATCH in extensions


async def send_texts(send: Send, texts: Sequence[str], *, batched: bool) -> None:
    """Send each of *texts* as a text frame, in order: in one write when *batched*."""
    if not texts:
        return
    if batched:
        await send({"type": SEND_BATCH, "texts": texts})
        return
    for text in texts:
        await send({"type": "websocket.send", "text": text})

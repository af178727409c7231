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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.types import Send
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import InvalidState

from server.slow_clients import QuickCloseWebSocketProtocol

SEND_BATCH = "switchboard.websocket.send_batch"
"""The extension's name, and its message's ``type``."""


class BatchingWebSocketProtocol(QuickCloseWebSocketProtocol):
    """uvicorn's (quick-closing) WebSocket protocol, with the :data:`SEND_BATCH` message."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # Before the app's task first runs (it was only scheduled): the app sees it.
        scope: Any = getattr(self, "scope", None)
        if scope is not None:  # none when the upgrade was refused
            scope["extensions"][SEND_BATCH] = {}

    async def send(self, message: Any) -> None:
        if message["type"] != SEND_BATCH:
            await super().send(message)
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

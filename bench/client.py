"""The bench's WebSocket clients: the ``websockets`` asyncio client, as any client would be.

A :class:`ConversationClient` opens ``/v1/conversations/{id}/ws``, says ``hello`` and
waits for ``welcome``; then a reader task hands every frame, parsed and stamped with
the time it arrived, to the scenario's handler.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Frame = dict[str, Any]
Handler = Callable[[Frame, float], None]

OPEN_TIMEOUT_S = 60.0
MAX_FRAME = 2**20

_ids = itertools.count(1)
# Set after every frame a reader hands on, and when a reader ends (wait_until).
_ARRIVED = asyncio.Event()


def next_id() -> str:
    return f"b{next(_ids)}"


async def open_socket(url: str, *, open_timeout: float = OPEN_TIMEOUT_S) -> ClientConnection:
    """A client connection with no compression (the server offers none), no pings, and
    no proxy (looking one up in the environment costs more than the rest of a connect)."""
    return await connect(
        url,
        proxy=None,
        compression=None,
        open_timeout=open_timeout,
        ping_interval=None,
        close_timeout=2,
        max_size=MAX_FRAME,
        max_queue=None,
    )


class ConversationClient:
    """One person's socket on one conversation."""

    def __init__(self, ws_base: str, conversation_id: str, token: str) -> None:
        self.url = f"{ws_base}/v1/conversations/{conversation_id}/ws"
        self.conversation_id = conversation_id
        self.token = token
        self.ws: ClientConnection | None = None
        self.welcome: Frame = {}
        self.handler: Handler = lambda frame, at: None
        self.closed_with: int | None = None
        self.received = 0

    async def open(
        self, *, resume_after: int | None = None, open_timeout: float = OPEN_TIMEOUT_S
    ) -> float:
        """Connect and say hello; return when ``welcome`` arrived (perf_counter)."""
        self.ws = await open_socket(self.url, open_timeout=open_timeout)
        hello: Frame = {"type": "hello", "token": self.token, "client": "bench"}
        if resume_after is not None:
            hello["resume_after"] = resume_after
        await self.ws.send(json.dumps(hello))
        raw = await self.ws.recv()
        at = time.perf_counter()
        self.welcome = json.loads(raw)
        if self.welcome.get("type") != "welcome":
            raise RuntimeError(f"expected welcome, got {self.welcome}")
        return at

    async def read(self) -> None:
        """Hand every frame to :attr:`handler` until the socket closes, however it closes."""
        assert self.ws is not None
        try:
            async for raw in self.ws:
                at = time.perf_counter()
                self.received += 1
                self.handler(json.loads(raw), at)
                _ARRIVED.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed_with = self.ws.close_code
            _ARRIVED.set()

    async def send(self, frame: Frame) -> float:
        """Send *frame*; return the time just before it went out (perf_counter)."""
        assert self.ws is not None
        at = time.perf_counter()
        await self.ws.send(json.dumps(frame))
        return at

    async def say(self, text: str) -> tuple[str, float]:
        frame_id = next_id()
        return frame_id, await self.send({"type": "say", "id": frame_id, "text": text})

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Wait until *condition* holds, checking it after every frame any client reads.

    Bound it with :func:`deadline`. Only when to go on is decided here: every time a
    scenario reports was stamped by the reader the moment its frame arrived.
    """
    while not condition():
        # No await between the check and the clear: no arrival can slip in between.
        _ARRIVED.clear()
        await _ARRIVED.wait()


@asynccontextmanager
async def deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """``asyncio.timeout``, with a ``TimeoutError`` that says what was awaited."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise TimeoutError(f"timed out after {seconds:g} s waiting for {what}") from None

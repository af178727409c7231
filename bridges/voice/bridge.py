"""The I/O adapter: :class:`VoiceBridge` carries one call over a conversation socket.

A thin loop around the sans-I/O :class:`~bridges.voice.call.CallState`: it reads
frames into it, sends the frames it makes, hands agent messages to
:class:`~bridges.voice.playback.Playback`, and reconnects when PROTOCOL.md says to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, TypeVar

import anyio
import jwt
from anyio.abc import TaskGroup
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridges.wire import RESUMABLE, CloseCode, SpeechState

from .call import (
    AgentMessage,
    Answered,
    CallState,
    Disconnected,
    Entry,
    Event,
    Failed,
    PlaybackStopped,
    Received,
    Sent,
    Sentences,
    Welcomed,
)
from .exceptions import CallEnded, Refused, WaitTimeout
from .playback import Playback, PrintingSpeaker, Speaker
from .script import Say, Speech, Step, Wait, WaitFor

T = TypeVar("T")
TokenSource = Callable[[], Awaitable[str]]
"""Gives a new service token for the same caller (PROTOCOL.md, additions: refresh)."""

DEFAULT_WAIT_TIMEOUT = 30.0
ANSWER_TIMEOUT = 10.0
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
# A token is renewed this long before it expires: a quarter of its life, at most a minute.
REFRESH_SHARE = 0.25
REFRESH_MARGIN_CAP_S = 60.0


class VoiceBridge:
    """One call: a ``voice`` connection to a conversation, kept open until hung up.

    Use as ``async with VoiceBridge(...) as call:``; leaving the block hangs up. A
    connection the server closes with a resumable code (1001, 1011, 4001, 4429, or a
    dropped network) is reopened with ``resume_after``; if the caller was speaking, the
    new connection is told so. ``log`` records every frame sent and received, and every
    barge-in, with ``time.monotonic()`` stamps; ``received`` holds every agent message
    in the order it arrived, ``heard`` those spoken to the end (not cut by barge-in).
    """

    def __init__(
        self,
        ws_url: str,
        token: str,
        *,
        resume_after: int = 0,
        speaker: Speaker | None = None,
        observer: Callable[[Entry], None] | None = None,
        token_source: TokenSource | None = None,
    ) -> None:
        self.ws_url = ws_url
        self.state = CallState(resume_after)
        self.playback = Playback(speaker or PrintingSpeaker(), self._on_heard)
        self.log: list[Entry] = []
        self.received: list[AgentMessage] = []
        self.heard: list[AgentMessage] = []
        self.ended: int | None = None
        self._token = token
        self._token_source = token_source
        self._observer = observer
        self._socket: ClientConnection | None = None
        self._answers: dict[str, Answered | Failed] = {}
        self._changed = anyio.Event()
        self._matched: set[int] = set()
        self._hung_up = False
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None

    @property
    def last_seq(self) -> int:
        """Resume here when calling back (``resume_after``)."""
        return self.state.last_seq

    async def __aenter__(self) -> VoiceBridge:
        try:
            socket = await self._open()
        except BaseException:
            self.playback.close()
            raise
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._tg.start_soon(self._keep_connected, socket)
        self._tg.start_soon(self.playback.run)
        if self._token_source is not None:
            self._tg.start_soon(self._keep_token_fresh, self._token_source)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.hangup()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        if exc is None or isinstance(exc, anyio.get_cancelled_exc_class()):
            # A cancellation must reach the scope it belongs to, if it is the group's.
            return await self._stack.__aexit__(exc_type, exc, tb)
        # The caller's own error: end the group as if the block had finished, so the
        # error propagates as itself rather than wrapped in an ExceptionGroup.
        await self._stack.__aexit__(None, None, None)
        return None

    # -- what the call does --------------------------------------------------------------

    async def say(self, text: str) -> int | None:
        """Send the caller's final transcript; returns the ``seq`` it was stored with.

        Raises :class:`Refused` if the server answers with an error, and
        :class:`CallEnded` if the call ends (or the connection drops) first.
        """
        frame = self.state.say(text)
        socket = await self._send(frame)

        def answer() -> Answered | Failed | None:
            found = self._answers.pop(frame["id"], None)
            if found is None and self._socket is not socket:
                # Lost with the connection: whether it was stored shows in the replay.
                raise CallEnded(self.ended or 1006)
            return found

        found: Answered | Failed = await self.wait_until(answer)
        if isinstance(found, Failed):
            raise Refused(found.code)
        return found.seq

    async def refresh(self, token: str) -> None:
        """Give the server the caller's new service *token*; reconnections use it too.

        Raises :class:`Refused` if the server does not take it (it names someone else,
        or has expired), and :class:`CallEnded` if the call ends first.
        """
        self._token = token
        frame = self.state.refresh(token)
        # Not recorded in the call's log: the frame carries a credential.
        socket = await self._send(frame, record=False)

        def answer() -> Answered | Failed | None:
            found = self._answers.pop(frame["id"], None)
            if found is None and self._socket is not socket:
                # The new connection's hello carried the new token already.
                return Answered(frame["id"], None)
            return found

        found: Answered | Failed = await self.wait_until(answer)
        if isinstance(found, Failed):
            raise Refused(found.code)

    async def speech(self, state: SpeechState) -> None:
        """The caller's voice activity. Starting to speak cuts the agent off (barge-in)."""
        if state is SpeechState.STARTED:
            cut = self.playback.stop()
            if cut:
                self._record(PlaybackStopped(time.monotonic(), cut))
        await self._send(self.state.speech(state))

    async def wait_for_text(self, text: str) -> AgentMessage:
        """Wait until the agent has said something containing *text* (any case): a
        message spoken to the end, as the caller heard it.

        A message already said counts, unless an earlier wait took it: a script need
        not know whether the agent spoke before or after its wait began.
        """
        needle = _fold(text)

        def find() -> AgentMessage | None:
            for index, message in enumerate(self.heard):
                if index not in self._matched and needle in _fold(message.text):
                    self._matched.add(index)
                    return message
            return None

        return await self.wait_until(find)

    async def wait_until(self, check: Callable[[], T | None]) -> T:
        """Re-run *check* after every frame (and change of connection) until it returns
        a value; raises :class:`CallEnded` if the call ends first."""
        while True:
            found = check()
            if found is not None:
                return found
            if self.ended is not None:
                raise CallEnded(self.ended)
            await self._changed.wait()

    async def wait_ended(self) -> int:
        """Wait until the server ends the call; returns its close code."""
        while self.ended is None:
            await self._changed.wait()
        return self.ended

    async def hangup(self) -> None:
        """End the call: close the socket (1000). Background work goes on."""
        self._hung_up = True
        socket, self._socket = self._socket, None
        if socket is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await socket.close()
        self._end(CloseCode.NORMAL_CLOSURE)

    async def play(self, step: Step, *, wait_timeout: float = DEFAULT_WAIT_TIMEOUT) -> None:
        """Perform one script step."""
        if isinstance(step, Say):
            await self.say(step.text)
        elif isinstance(step, Speech):
            await self.speech(step.state)
        elif isinstance(step, Wait):
            await anyio.sleep(step.seconds)
        elif isinstance(step, WaitFor):
            timeout = step.timeout or wait_timeout
            try:
                with anyio.fail_after(timeout):
                    await self.wait_for_text(step.text)
            except TimeoutError:
                raise WaitTimeout(
                    f"the agent did not say {step.text!r} within {timeout:g} s"
                ) from None
        else:
            await self.hangup()

    # -- the connection -----------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        """Connect, say hello, and wait for ``welcome``; raises :class:`CallEnded`."""
        try:
            socket = await connect(self.ws_url, max_size=2**20, open_timeout=10, close_timeout=2)
        except OSError:
            raise CallEnded(1006) from None
        try:
            await socket.send(json.dumps(self.state.hello(self._token)))
            with anyio.fail_after(ANSWER_TIMEOUT):
                while not isinstance(await self._on_frame(await socket.recv()), Welcomed):
                    pass
            if self.state.speaking:
                # A new connection knows nothing of the caller's voice activity.
                frame = self.state.speech(SpeechState.STARTED)
                await socket.send(json.dumps(frame))
                self._record(Sent(time.monotonic(), frame))
        except ConnectionClosed:
            raise CallEnded(socket.close_code or 1006) from None
        except TimeoutError:
            await socket.close()
            raise CallEnded(1006) from None
        self._socket = socket
        self._notify()
        return socket

    async def _keep_connected(self, socket: ClientConnection) -> None:
        while True:
            try:
                async for raw in socket:
                    await self._on_frame(raw)
            except ConnectionClosed:
                pass
            code = socket.close_code or 1006
            if self._hung_up:
                return
            self._socket = None
            self._record(Disconnected(time.monotonic(), code))
            reopened = await self._reopen() if code in RESUMABLE else None
            if reopened is None:
                self._end(code)
                return
            socket = reopened

    async def _reopen(self) -> ClientConnection | None:
        for delay in RECONNECT_DELAYS:
            await anyio.sleep(delay)
            if self._hung_up:
                return None
            try:
                return await self._open()
            except CallEnded as ended:
                if ended.code not in RESUMABLE:
                    return None
        return None

    async def _on_frame(self, raw: str | bytes) -> Event | None:
        try:
            frame = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(frame, dict):
            return None
        self._record(Received(time.monotonic(), frame))
        event = self.state.receive(frame)
        if isinstance(event, AgentMessage):
            self.received.append(event)
            if event.speak:
                await self.playback.queue(event)
        elif isinstance(event, Sentences):
            # Only agent replies stream, and a voice connection speaks every one.
            await self.playback.queue(event)
        elif isinstance(event, Answered | Failed) and event.id is not None:
            self._answers[event.id] = event
        self._notify()
        return event

    async def _keep_token_fresh(self, source: TokenSource) -> None:
        """Renew the service token before each expiry, for as long as the call lasts.

        A source that fails, or a server that refuses what it gave, stops the renewal:
        the server then ends the call with 4401 when the token expires, which the call
        reports like any other end.
        """
        while True:
            await anyio.sleep(seconds_until_refresh(self._token))
            try:
                token = await source()
                await self.refresh(token)
            except (Refused, CallEnded):
                return
            except Exception:
                # The operator's token source (their identity service) failed.
                return

    async def _send(self, frame: Mapping[str, Any], *, record: bool = True) -> ClientConnection:
        """Send *frame* on the current connection, waiting out a reconnection (they are
        bounded); raises :class:`CallEnded` once the call is over."""
        while True:
            socket = await self.wait_until(lambda: self._socket)
            try:
                await socket.send(json.dumps(frame))
            except ConnectionClosed:
                # Refused before anything was written: send it again on the next one.
                await self.wait_until(self._replaced(socket))
                continue
            if record:
                self._record(Sent(time.monotonic(), frame))
            return socket

    def _replaced(self, socket: ClientConnection) -> Callable[[], bool | None]:
        """A check for :meth:`wait_until`: *socket* is no longer the connection."""
        return lambda: self._socket is not socket or None

    def _on_heard(self, message: AgentMessage) -> None:
        self.heard.append(message)
        self._notify()

    def _record(self, entry: Entry) -> None:
        self.log.append(entry)
        if self._observer is not None:
            self._observer(entry)

    def _end(self, code: int) -> None:
        if self.ended is None:
            self.ended = code
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def seconds_until_refresh(token: str, *, now: float | None = None) -> float:
    """How long to wait before renewing *token*: until a quarter of its life (at most
    a minute) is left. Its claims are read, not verified: the server does that."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        exp = float(claims["exp"])
        issued = float(claims.get("iat", exp - 4 * REFRESH_MARGIN_CAP_S))
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return 0.0
    now = time.time() if now is None else now
    margin = min(REFRESH_MARGIN_CAP_S, max(0.0, exp - issued) * REFRESH_SHARE)
    return max(0.0, exp - margin - now)


def _fold(text: str) -> str:
    """*text* for matching: any case, any spacing, and a script's ``'`` matches ``’``."""
    return " ".join(text.replace("’", "'").casefold().split())

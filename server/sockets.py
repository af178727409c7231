"""The two WebSocket endpoints of PROTOCOL.md: a conversation, and a watched chat
(and the routes of the Chats view's socket, :mod:`server.chat_list_socket`).

A socket is one task, the reader (client frames → runtime calls), and a writer task
only while something waits to be sent that cannot go at once. What the socket sends —
a live event the bus hands over, from the publisher's task, or its own answer — is
written there and then when it is next in order and nothing waits before it, through
the server's ``send_now`` (:mod:`server.websocket_protocol`): no task is woken for it.
Otherwise (a gap to fill from the store, a follow-up to audit first, a client whose
buffer is full, a voice bridge, a server without ``send_now``) it goes to the outbox
(:class:`server.outbox.Outbox`) and the writer is started, which writes each burst in
one write and ends once the outbox is empty; whichever of the two tasks fails ends the
other. The token's expiry is a deadline on their scope, which a ``refresh`` moves. A
socket does not start its conversation's runtime: its first command does. On a voice
socket the writer holds unsolicited updates for the caller's next pause, and stays
while it holds any; the rules are :class:`server.voice_turns.VoiceTurns`, which this
module only feeds and asks.

Invariants:

* Nothing is sent before ``welcome``; replayed events come before live ones, in
  ``seq`` order, each exactly once (what the replay already sent is dropped by seq).
* Frames leave in the order they were put: one is written at once only while the
  writer is not running, and the writer runs until the outbox is empty.
* The outbox is bounded; a client that lets it fill is closed with 4001 and resumes
  from its last ``seq``: memory never grows with a slow reader.
* Errors sent to the client are fixed texts per code: never stack traces, secrets or
  anything from a record the caller may not see.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import anyio
from anyio.abc import TaskGroup
from opentelemetry import trace
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from agents.exceptions import NotFound, SwitchboardError, Unavailable
from agents.models import (
    Chat,
    ChatKind,
    Conversation,
    Message,
    MessageKind,
    Principal,
    Role,
    StreamEvent,
    new_id,
)
from agents.ports import AuditEntry, AuditOutcome, AuditReason, AuditType
from agents.spans import start_span
from server import protocol
from server.auth import bearer_token, verify_session_token
from server.exceptions import Unauthorized
from server.http_errors import error_code_for
from server.node import Node
from server.outbox import Outbox
from server.protocol import CloseCode, ErrorCode, FrameError
from server.slow_clients import SETTLE_S, DropReason
from server.voice_turns import VoiceTurns
from server.websocket_protocol import SEND_BATCH, batches_supported, send_texts

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("switchboard.server")

REPLAY_PAGE = 1000
_WAKE: dict[str, Any] = {}
"""Queued to wake the writer when the voice state changes; never sent."""

CONVERSATION_CHANNEL = "ws:/v1/conversations/{conversation_id}/ws"
CHAT_CHANNEL = "ws:/v1/chats/{chat_id}/ws"


class _Close(Exception):
    """Unwinds the socket's tasks to close it with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _TokenBucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self) -> bool:
        now = anyio.current_time()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Session:
    """One accepted socket, from ``hello`` to close."""

    def __init__(self, websocket: WebSocket, node: Node, asgi_send: Send | None = None) -> None:
        self.ws = websocket
        self.node = node
        # The server's own send, for frames in batches (server.websocket_protocol);
        # without it (or without the extension) frames go one by one.
        self._asgi_send = asgi_send if asgi_send is not None else websocket.send
        self._batched = asgi_send is not None and batches_supported(websocket.scope)
        # The server's write-at-once, if it has one; None until the socket is live.
        self._write_now: Callable[[Sequence[str]], bool] | None = None
        # The socket's task group once it is live (the writer is started in it), and
        # whether the writer runs: while it does, everything goes through the outbox.
        self._tg: TaskGroup | None = None
        self._writing = False
        self.settings = node.settings
        self.principal_key = ""
        self.principal: Principal | None = None
        # Whether the call the principal carries is this connection's (its token named none).
        self.call_assigned = False
        # When the socket's token expires (epoch seconds); a refresh moves it later.
        self.expires_at = 0.0
        # Voice turn-taking (server.voice_turns): which updates wait for a pause.
        self.turns = VoiceTurns(pause_grace=self.settings.voice_pause_grace)
        self._close_code: int | None = None
        self._scope = anyio.CancelScope()
        # Made only for a caller of wait_closed: most sockets never have one.
        self._closed: anyio.Event | None = None
        self._ended = False
        self._last_sent = 0
        # Everything this socket sends, in order: live events (put by the bus, from
        # the publisher's task) and its own answers. Room for a burst (a 1,000-way
        # fan-out's events) before a client counts as slow; it grows only as used.
        self._outbox: Outbox[StreamEvent | dict[str, Any]] = Outbox(
            max(self.settings.outbound_queue_size * 32, 8192)
        )
        self._chat_id = ""
        # Ends the socket's tasks when its token expires; a refresh moves it later.
        self._expiry: anyio.CancelScope | None = None
        self.conversation_id: str | None = None
        self.claim_number = 0
        self._hello_wait: anyio.CancelScope | None = None
        self._evicted = False

    @property
    def voice(self) -> bool:
        """Whether the client is a voice bridge (its ``hello`` said so)."""
        return self.turns.voice

    # -- the registry's side ---------------------------------------------------------

    def close_soon(self, code: int) -> None:
        if self._close_code is None:
            self._close_code = code
        self._scope.cancel()

    def _mark_closed(self) -> None:
        self._ended = True
        if self._closed is not None:
            self._closed.set()

    async def wait_closed(self) -> None:
        if self._ended:
            return
        if self._closed is None:
            self._closed = anyio.Event()
        await self._closed.wait()

    # -- the handshake ---------------------------------------------------------------

    async def handshake(self) -> protocol.Hello | None:
        """Accept, then wait for a valid ``hello``; close with 4401 if none comes."""
        origin = self.ws.headers.get("origin")
        if origin is not None and not self.settings.origin_allowed(origin):
            # Refused before accept: the client sees a 403 on the upgrade.
            await self.ws.close(code=1008)
            return None
        await self.ws.accept()
        try:
            header_token = bearer_token(self.ws.headers.get("authorization"))
        except Unauthorized:
            await self._close_now(CloseCode.UNAUTHORIZED)
            return None
        waiting = self.node.awaiting_hello
        hello: protocol.Hello | None = None
        with anyio.move_on_after(self.settings.hello_timeout) as self._hello_wait:
            try:
                async with anyio.create_task_group() as tg:
                    # A socket is a descriptor held for nobody until its hello: at most
                    # so many may wait at once; over that, those that waited longest
                    # are closed (server.slow_clients; a client says hello at once).
                    if waiting.hold(self):
                        tg.start_soon(self._evict_oldest_soon)
                    hello = await self._wait_for_hello(header_token)
            finally:
                waiting.discard(self)
        timed_out = self._hello_wait.cancelled_caught
        self._hello_wait = None  # held for as long as the socket otherwise
        if hello is None and timed_out:
            if not self._evicted:
                self._note_dropped(DropReason.HEAD_TIMEOUT)
            await self._close_now(CloseCode.UNAUTHORIZED)
        return hello

    async def _evict_oldest_soon(self) -> None:
        # Shielded: the sweep is due whatever becomes of this socket. Not at once, so
        # that the hellos of sockets that came in the same burst are read first.
        with anyio.CancelScope(shield=True):
            await anyio.sleep(SETTLE_S)
            for oldest in self.node.awaiting_hello.sweep():
                assert isinstance(oldest, Session)
                oldest.evict_before_hello()

    def evict_before_hello(self) -> None:
        """Stop waiting for this socket's hello: it closes 4401, as on a timeout."""
        self._evicted = True
        if self._hello_wait is not None:
            self._hello_wait.cancel()
        self._note_dropped(DropReason.EVICTED)

    def _note_dropped(self, reason: DropReason) -> None:
        """Count a socket closed before its hello (``/metrics``); log the counts at most
        once per ``LOG_EVERY_S``."""
        counts = self.node.awaiting_hello.note_dropped(reason, time.monotonic())
        if counts is not None:
            log.warning(
                "slow clients dropped",
                extra={
                    "count": sum(counts.values()),
                    **{f"dropped_{name}": n for name, n in counts.items()},
                    "waiting": len(self.node.awaiting_hello),
                    "limit": self.node.awaiting_hello.cap,
                },
            )

    async def _wait_for_hello(self, header_token: str | None) -> protocol.Hello | None:
        """The first valid ``hello`` (``None`` once the socket was closed for want of one)."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return None
            frame = protocol.parse_client_frame(
                _payload(message), max_size=self.settings.max_frame_size
            )
            if isinstance(frame, FrameError):
                if frame.close_code is not None:
                    await self._close_now(frame.close_code)
                    return None
                await self._send_now(frame.to_wire())
                continue
            if not isinstance(frame, protocol.Hello):
                await self._send_now(
                    protocol.error(ErrorCode.UNAUTHORIZED, id=getattr(frame, "id", None))
                )
                continue
            token = frame.token or header_token
            if token is None:
                await self._close_now(CloseCode.UNAUTHORIZED)
                return None
            try:
                verified = verify_session_token(self.settings.secret, token)
            except Unauthorized:
                await self._close_now(CloseCode.UNAUTHORIZED)
                return None
            self.principal = verified.principal
            self.expires_at = verified.expires_at
            # A bridge carries many callers: its connections count per caller.
            self.principal_key = "/".join(
                filter(
                    None,
                    (self.principal.workspace_id, self.principal.id, self.principal.act_for),
                )
            )
            self.turns.voice = frame.is_voice
            principal = self.principal
            if (
                frame.is_voice
                and principal.role is Role.SERVICE
                and principal.patient_id is None
                and principal.call is None
            ):
                # A phone line whose bridge named no call: its caller is still a caller,
                # unverified, for as long as this connection lasts (PROTOCOL.md, Callers).
                self.principal = replace(principal, call=new_id("call"))
                self.call_assigned = True
            return frame

    # -- serving ---------------------------------------------------------------------

    async def serve_conversation(self, conversation_id: str) -> None:
        hello = await self.handshake()
        if hello is None or self.principal is None:
            return
        host = self.node.host
        try:
            conversation = await host.find_conversation(
                self.principal, conversation_id, channel=CONVERSATION_CHANNEL
            )
        except NotFound:
            await self._close_now(CloseCode.NOT_FOUND)
            return
        except Unavailable:
            await self._close_now(CloseCode.INTERNAL_ERROR)
            return
        await self._serve(hello, conversation.chat_id, conversation, None)

    async def serve_chat(self, chat_id: str) -> None:
        hello = await self.handshake()
        if hello is None or self.principal is None:
            return
        try:
            chat = await self.node.host.open_chat(self.principal, chat_id, channel=CHAT_CHANNEL)
        except NotFound:
            await self._close_now(CloseCode.NOT_FOUND)
            return
        except Unavailable:
            await self._close_now(CloseCode.INTERNAL_ERROR)
            return
        await self._serve(hello, chat.id, None, chat)

    async def _serve(
        self,
        hello: protocol.Hello,
        chat_id: str,
        conversation: Conversation | None,
        chat: Chat | None,
    ) -> None:
        assert self.principal is not None
        registry = self.node.sessions
        if (
            registry.connections_of(self.principal_key)
            >= self.settings.max_connections_per_principal
        ):
            await self._close_now(CloseCode.RATE_LIMITED)
            return
        registry.add(self)
        try:
            if conversation is not None:
                previous = registry.claim(conversation.id, self)
                if previous is not None:
                    previous.close_soon(CloseCode.REPLACED)
                if self.node.relay is not None:
                    # Sockets of this conversation on other nodes are replaced too.
                    self.claim_number = await self.node.relay.claim(conversation.id)
                    registry.claimed_here(conversation.id, self)
            with self._scope:
                await self._run(hello, chat_id, conversation, chat)
        except _Close as close:
            self._close_code = close.code
        finally:
            registry.remove(self)
            self._outbox.close()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._close_now(self._close_code or CloseCode.NORMAL_CLOSURE)
            self._mark_closed()

    async def _run(
        self,
        hello: protocol.Hello,
        chat_id: str,
        conversation: Conversation | None,
        chat: Chat | None,
    ) -> None:
        assert self.principal is not None
        store = self.node.store
        # Listen before reading the store, so nothing committed meanwhile is missed;
        # what the replay also sends is dropped by seq (in _add).
        self._chat_id = chat_id
        with self.node.bus.listen([chat_id], self._on_live):
            last_seq = await store.last_seq(chat_id)
            if conversation is not None:
                welcome = protocol.welcome(last_seq=last_seq, conversation_id=conversation.id)
            else:
                assert chat is not None
                welcome = protocol.welcome(last_seq=last_seq, chat_id=chat.id)
            await self._send_now(welcome)
            after = hello.resume_after or 0
            if after > last_seq:
                # The client holds a future this stream never had (another database, a
                # bug): it is told to drop its copy, and gets what comes next.
                await self._send_now(protocol.error(ErrorCode.RESYNC))
                after = last_seq
            self._last_sent = after
            replay = time.perf_counter()
            if after < last_seq:  # else nothing to read: what comes next is live
                await self._replay(chat_id, after, last_seq, audit=conversation is not None)
            self.node.metrics.replay.observe(time.perf_counter() - replay)
            target = conversation or await store.get_conversation(
                self.principal.workspace_id, chat.conversation_id if chat else ""
            )
            if target is None:
                raise _Close(CloseCode.NOT_FOUND)
            self.conversation_id = target.id
            # Wherever the conversation's home is, this socket works the same: its
            # commands go through the host, which relays them if need be; and if the
            # home dies, this node takes the conversation over at once.
            # The reader is this task; the writer runs only while something waits.
            with self.node.host.watch(target), self._expiring():
                try:
                    async with anyio.create_task_group() as tg:
                        self._go_live(tg)
                        await self._guard(self._read, tg, conversation, chat)
                finally:
                    self._no_longer_live()
            self._check_expired()

    def _go_live(self, tg: TaskGroup) -> None:
        """From now on frames are written as they come (what waits already first)."""
        self._tg = tg
        if not self.voice and self._batched:
            extension = self.ws.scope["extensions"].get(SEND_BATCH) or {}
            self._write_now = extension.get("send_now")
        if len(self._outbox) or self.voice:
            self._start_writer()

    def _no_longer_live(self) -> None:
        """The socket's group has ended: nothing more is written or started."""
        self._tg = None
        self._write_now = None

    def _start_writer(self) -> None:
        if not self._writing and self._tg is not None:
            self._writing = True
            self._tg.start_soon(self._writer, self._tg)

    async def _guard(self, fn: Any, tg: TaskGroup, *args: Any, ends_all: bool = True) -> None:
        """Run one of the socket's tasks; when it fails, end the others, and when it
        ends normally too unless *ends_all* is false (the writer, done for now)."""
        failed = True
        try:
            await fn(*args)
            failed = False
        except _Close as close:
            self._close_code = self._close_code or close.code
        except (WebSocketDisconnect, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        except OSError:
            pass
        finally:
            if failed or ends_all:
                tg.cancel_scope.cancel()

    async def _writer(self, tg: TaskGroup) -> None:
        await self._guard(self._write, tg, ends_all=False)

    async def _replay(self, chat_id: str, after: int, last_seq: int, *, audit: bool) -> None:
        """Send the events after *after*, page by page, until a page comes back short;
        audited once if any is a task's.

        Each event's frame is sent as stored (``SqlStore.frames_after``), except to a
        voice bridge, whose frames say whether to speak (:meth:`_event_wire`). The first
        page asks for the events the welcome's *last_seq* says are missing and one more
        (so that it comes back short unless more came since): a reconnect's few are one
        small read, which the store makes in the event loop's thread.
        """
        store = self.node.store
        self._last_sent = after
        audited = not audit
        size = min(REPLAY_PAGE, last_seq - after + 1)
        while True:
            if self.voice:
                events = await store.events_after(chat_id, self._last_sent, size)
                page = [(e.seq, e.task_id, protocol.encode(self._event_wire(e))) for e in events]
            else:
                frames = await store.frames_after(chat_id, self._last_sent, size)
                page = [(f.seq, f.task_id, f.text) for f in frames]
            if not page:
                return
            if not audited and any(task_id is not None for _, task_id, _ in page):
                await self._audit_view("ws:replay", conversation_chat=chat_id)
                audited = True
            await self._send_texts([text for _, _, text in page])
            self._last_sent = page[-1][0]
            if len(page) < size:
                return
            size = REPLAY_PAGE

    # -- the three tasks -------------------------------------------------------------

    async def _read(self, conversation: Conversation | None, chat: Chat | None) -> None:
        bucket = _TokenBucket(
            self.settings.rate_limit,
            float(self.settings.rate_limit_burst),
            float(self.settings.rate_limit_burst),
            anyio.current_time(),
        )
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if not bucket.take():
                raise _Close(CloseCode.RATE_LIMITED)
            if time.time() >= self.expires_at:
                # The watcher may not have run yet: nothing is served on an expired token.
                raise _Close(CloseCode.UNAUTHORIZED)
            frame = protocol.parse_client_frame(
                _payload(message), max_size=self.settings.max_frame_size
            )
            if isinstance(frame, FrameError):
                if frame.close_code is not None:
                    raise _Close(frame.close_code)
                self._queue(frame.to_wire())
                continue
            if isinstance(frame, protocol.Refresh):
                await self._refresh(frame)
                continue
            try:
                if conversation is not None:
                    await self._on_conversation_frame(frame, conversation)
                else:
                    assert chat is not None
                    await self._on_chat_frame(frame, chat)
            except SwitchboardError as exc:
                code = error_code_for(exc)
                self._queue(protocol.error(code, id=getattr(frame, "id", None)))

    async def _on_conversation_frame(
        self, frame: protocol.ClientFrame, conversation: Conversation
    ) -> None:
        assert self.principal is not None
        host = self.node.host
        channel = "ws:"
        if isinstance(frame, protocol.Say):
            self.turns.said()
            read = time.perf_counter()
            try:
                with start_span(
                    _tracer,
                    "switchboard.say",
                    kind=trace.SpanKind.SERVER,
                    attributes={"switchboard.conversation": conversation.id},
                    record_exception=False,
                    set_status_on_exception=False,
                ):
                    event = await host.say(self.principal, conversation, frame.text)
            except SwitchboardError:
                self.turns.say_failed()
                raise
            self._queue(protocol.ack(frame.id, event.seq))
            self.node.metrics.say_ack.observe(time.perf_counter() - read)
        elif isinstance(frame, protocol.Ping):
            self._queue(protocol.pong(frame.id))
        elif isinstance(frame, protocol.TaskList):
            tasks = await host.list_tasks(
                self.principal, conversation.id, channel=channel + "task.list"
            )
            self._queue(protocol.result_tasks(frame.id, [t.view() for t in tasks]))
        elif isinstance(frame, protocol.TaskStatus):
            task = await host.read_task(
                self.principal,
                frame.task_id,
                channel=channel + "task.status",
                conversation_id=conversation.id,
            )
            self._queue(protocol.result_task(frame.id, task.view()))
        elif isinstance(frame, protocol.TaskInstruct):
            event = await host.instruct(
                self.principal,
                frame.task_id,
                frame.text,
                channel=channel + "task.instruct",
                conversation_id=conversation.id,
            )
            self._queue(protocol.ack(frame.id, event.seq))
        elif isinstance(frame, protocol.TaskCancel):
            if frame.task_id is None:
                self._queue(protocol.error(ErrorCode.BAD_FRAME, id=frame.id))
                return
            task = await host.cancel(
                self.principal,
                frame.task_id,
                frame.reason,
                channel=channel + "task.cancel",
                conversation_id=conversation.id,
            )
            self._queue(protocol.result_task(frame.id, task.view()))
        elif isinstance(frame, protocol.Speech):
            await self._on_speech(frame, conversation)
        else:
            # A second hello: the socket is already greeted.
            self._queue(protocol.error(ErrorCode.BAD_FRAME))

    async def _on_chat_frame(self, frame: protocol.ClientFrame, chat: Chat) -> None:
        assert self.principal is not None
        host = self.node.host
        if isinstance(frame, protocol.Ping):
            self._queue(protocol.pong(frame.id))
            return
        if chat.kind is not ChatKind.TASK or chat.task_id is None:
            if isinstance(frame, protocol.Say | protocol.TaskCancel | protocol.TaskInstruct):
                self._queue(protocol.error(ErrorCode.NOT_FOUND, id=frame.id))
            else:
                self._queue(protocol.error(ErrorCode.UNKNOWN_TYPE, id=getattr(frame, "id", None)))
            return
        if isinstance(frame, protocol.Say):
            event = await host.instruct(
                self.principal, chat.task_id, frame.text, channel="ws:chat.say"
            )
            self._queue(protocol.ack(frame.id, event.seq))
        elif isinstance(frame, protocol.TaskCancel):
            if frame.task_id not in (None, chat.task_id):
                await self._not_this_chats(frame.task_id, "ws:chat.task.cancel")
            task = await host.cancel(
                self.principal, chat.task_id, frame.reason, channel="ws:chat.task.cancel"
            )
            self._queue(protocol.result_task(frame.id, task.view()))
        elif isinstance(frame, protocol.TaskStatus):
            if frame.task_id != chat.task_id:
                await self._not_this_chats(frame.task_id, "ws:chat.task.status")
            task = await host.read_task(self.principal, chat.task_id, channel="ws:chat.task.status")
            self._queue(protocol.result_task(frame.id, task.view()))
        elif isinstance(frame, protocol.TaskInstruct):
            if frame.task_id != chat.task_id:
                await self._not_this_chats(frame.task_id, "ws:chat.task.instruct")
            event = await host.instruct(
                self.principal, chat.task_id, frame.text, channel="ws:chat.task.instruct"
            )
            self._queue(protocol.ack(frame.id, event.seq))
        else:
            self._queue(protocol.error(ErrorCode.UNKNOWN_TYPE, id=getattr(frame, "id", None)))

    async def _not_this_chats(self, task_id: str, channel: str) -> NoReturn:
        """Refuse a task other than the watched chat's: not_found, audited like any look.

        The host writes ``ACCESS_DENIED`` for a task the caller may not see; one they
        own is simply not this socket's to act on.
        """
        assert self.principal is not None
        await self.node.host.find_task(self.principal, task_id, channel=channel)
        raise NotFound("task")

    async def _refresh(self, frame: protocol.Refresh) -> None:
        """Extend the socket's life with a new token for the very same principal.

        Anything else (an invalid or expired token, another principal's) is refused
        with ``unauthorized``, audited as a denied attempt, and changes nothing.
        """
        assert self.principal is not None
        try:
            verified = verify_session_token(self.settings.secret, frame.token)
        except Unauthorized:
            verified = None
        renewed = None if verified is None else verified.principal
        if renewed is not None and self.call_assigned and renewed.call is None:
            renewed = replace(renewed, call=self.principal.call)
        if verified is None or renewed is None or not _same_principal(renewed, self.principal):
            await self._audit_refused_refresh()
            self._queue(protocol.error(ErrorCode.UNAUTHORIZED, id=frame.id))
            return
        self.expires_at = max(self.expires_at, verified.expires_at)
        if self._expiry is not None:
            self._expiry.deadline = self._expiry_deadline()
        self._queue(protocol.ack(frame.id))

    def _expiring(self) -> anyio.CancelScope:
        """A scope for the socket's tasks that ends when its token expires; a refresh
        moves it later (:meth:`_refresh`), and :meth:`_check_expired` closes with 4401."""
        self._expiry = anyio.CancelScope(deadline=self._expiry_deadline())
        return self._expiry

    def _expiry_deadline(self) -> float:
        # expires_at is wall-clock; the scope's deadline is the event loop's clock.
        return anyio.current_time() + max(0.0, self.expires_at - time.time())

    def _check_expired(self) -> None:
        if self._expiry is not None and self._expiry.cancelled_caught:
            log.info("socket token expired", extra={"close_code": int(CloseCode.UNAUTHORIZED)})
            raise _Close(CloseCode.UNAUTHORIZED)

    async def _audit_refused_refresh(self) -> None:
        assert self.principal is not None
        with contextlib.suppress(Unavailable):
            # The refusal stands whether or not it could be written down.
            await self.node.audit.record(
                AuditEntry(
                    type=AuditType.ACCESS_DENIED,
                    actor=self.principal,
                    channel="ws:refresh",
                    outcome=AuditOutcome.DENIED,
                    reason=AuditReason.NOT_OWNER,
                    conversation_id=self.conversation_id,
                    on_behalf_of=(self.principal.act_for,) if self.principal.act_for else (),
                )
            )

    async def _on_speech(self, frame: protocol.Speech, conversation: Conversation) -> None:
        assert self.principal is not None
        if frame.state is protocol.SpeechState.STARTED:
            # Barge-in: the reply still being produced is abandoned (it will never come);
            # background tasks go on.
            try:
                barged_in = await self.node.host.interrupt_turn(self.principal, conversation)
            except SwitchboardError:
                barged_in = False  # the home is away: nothing of it is being said here
            self.turns.speech_started(barged_in=barged_in)
        else:
            self.turns.speech_stopped(anyio.current_time())
        self._queue(_WAKE)

    def _on_live(self, event: StreamEvent) -> bool:
        """Take a live event from the bus (in the publisher's task: never blocks).

        A full outbox closes the socket 4001: the client resumes from its last seq.
        """
        if self._put(event):
            return True
        self.close_soon(CloseCode.SLOW_CONSUMER)
        return False

    def _queue(self, item: StreamEvent | dict[str, Any]) -> None:
        if not self._put(item):
            raise _Close(CloseCode.SLOW_CONSUMER)

    def _put(self, item: StreamEvent | dict[str, Any]) -> bool:
        """Send *item* now if it may go at once, else queue it for the writer; ``False``
        if the outbox is full."""
        if self._write_now is not None and not self._writing and self._send_at_once(item):
            return True
        if not self._outbox.put(item):
            return False
        self._start_writer()
        return True

    def _send_at_once(self, item: StreamEvent | dict[str, Any]) -> bool:
        """Write *item* in this task if nothing stands in its way: whether it was dealt
        with (written, or dropped as the replay's)."""
        assert self._write_now is not None
        if isinstance(item, dict):
            return item is not _WAKE and self._write_now((protocol.encode(item),))
        if item.is_preview:
            return self._write_now((protocol.encode(item.to_wire()),))
        if item.seq <= self._last_sent:
            return True  # the replay sent it
        body = item.body
        if (
            item.seq != self._last_sent + 1  # a gap, filled from the store
            or item.wire is None
            or (isinstance(body, Message) and body.kind is MessageKind.FOLLOWUP)  # audited
            or time.time() >= self.expires_at  # the writer closes the socket
            or not self._write_now((item.wire,))
        ):
            return False
        self._last_sent = item.seq
        self.turns.delivered(item)  # as the writer's _deliver does
        return True

    async def _write(self) -> None:
        """Write what the outbox holds, a burst at a time, in one write each, until it
        is empty and nothing is held for a caller's pause."""
        outbox = self._outbox
        try:
            while True:
                texts: list[str] = []
                for item in outbox.take_all():
                    await self._add(item, texts)
                await self._release_held(texts)
                await self._send_texts(texts)
                if len(outbox):
                    continue
                timeout = self.turns.timeout(anyio.current_time())
                if timeout is None and not self.voice:
                    return  # what comes next is written as it comes
                if timeout is None:
                    await outbox.wait()
                else:
                    # Held updates wait for the caller's pause: woken then, if not before.
                    with anyio.move_on_after(timeout):
                        await outbox.wait()
        finally:
            self._writing = False

    async def _add(self, item: StreamEvent | dict[str, Any], texts: list[str]) -> None:
        """Add what *item* sends to *texts*: in seq order, each event once, gaps filled."""
        if isinstance(item, dict):
            if item is not _WAKE:
                texts.append(protocol.encode(item))
            return
        event = item
        if event.is_preview:
            # A reply still being written: sent as it comes, outside the seq order
            # (its stored ``message`` follows, in order, with the same id).
            texts.append(protocol.encode(event.to_wire()))
            return
        if event.seq <= self._last_sent:
            return  # the replay sent it
        if event.seq > self._last_sent + 1:
            # Published elsewhere before it reached us (another node), or dropped: the
            # store has what came between.
            missing = await self.node.store.events_after(
                self._chat_id, self._last_sent, event.seq - self._last_sent - 1
            )
            for filler in missing:
                await self._hold_or_deliver(filler, texts)
        await self._hold_or_deliver(event, texts)

    async def _hold_or_deliver(self, event: StreamEvent, texts: list[str]) -> None:
        self._last_sent = event.seq
        if self.turns.hold(event, anyio.current_time()):
            return
        await self._deliver(event, texts)
        await self._release_held(texts)

    async def _release_held(self, texts: list[str]) -> None:
        """Deliver the updates held for the caller's pause, if the pause has come."""
        for event in self.turns.take_held(anyio.current_time()):
            await self._deliver(event, texts)

    async def _deliver(self, event: StreamEvent, texts: list[str]) -> None:
        if time.time() >= self.expires_at:
            # The expiry may not have been seen yet: nothing leaves on an expired token.
            raise _Close(CloseCode.UNAUTHORIZED)
        self.turns.delivered(event)
        body = event.body
        if isinstance(body, Message) and body.kind is MessageKind.FOLLOWUP:
            # A follow-up carries a task's result: an audited read, before it leaves.
            await self._audit_view("ws:followup", task_id=body.task_id)
        if event.wire is not None and not self.voice:
            texts.append(event.wire)  # encoded once, where it was stored
        else:
            texts.append(protocol.encode(self._event_wire(event)))

    def _event_wire(self, event: StreamEvent) -> dict[str, Any]:
        wire = event.to_wire()
        if self.voice and wire["type"] == "message" and wire["role"] == "agent":
            # A caller hears only what was said in their own call: not an earlier
            # call's replies, nor news of work an earlier caller started.
            call = None if self.principal is None else self.principal.call
            wire["speak"] = call is None or wire.get("call") == call
        return wire

    async def _audit_view(
        self, channel: str, *, task_id: str | None = None, conversation_chat: str | None = None
    ) -> None:
        assert self.principal is not None
        try:
            await self.node.audit.record(
                AuditEntry(
                    type=AuditType.PHI_RECORD_VIEWED,
                    actor=self.principal,
                    channel=channel,
                    task_id=task_id,
                    chat_id=conversation_chat,
                    conversation_id=self.conversation_id,
                    on_behalf_of=(self.principal.act_for,) if self.principal.act_for else (),
                )
            )
        except Unavailable:
            # Fail closed: the contents do not leave; the client resumes later.
            raise _Close(CloseCode.INTERNAL_ERROR) from None

    # -- the wire --------------------------------------------------------------------

    async def _send_now(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(protocol.encode(frame))

    async def _send_texts(self, texts: Sequence[str]) -> None:
        """Send encoded frames in order, in one write where the server allows it."""
        await send_texts(self._asgi_send, texts, batched=self._batched)

    async def _close_now(self, code: int) -> None:
        # Already closed by the other side is fine: there is nothing left to tell it.
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self.ws.close(code=int(code))


def _same_principal(new: Principal, old: Principal) -> bool:
    """Whether a refreshed token names the socket's own principal (the display name
    may change; who it is, the patient it may see and the call it carries, may not)."""
    return (new.workspace_id, new.id, new.role, new.act_for, new.patient_id, new.call) == (
        old.workspace_id,
        old.id,
        old.role,
        old.act_for,
        old.patient_id,
        old.call,
    )


def _payload(message: Any) -> str | bytes:
    """A received ASGI message's text, or its bytes (a binary frame)."""
    text = message.get("text")
    if isinstance(text, str):
        return text
    data = message.get("bytes")
    return data if isinstance(data, bytes) else b""


@contextlib.contextmanager
def _client_may_leave() -> Iterator[None]:
    """A client that goes away mid-send (during the welcome or the replay) is ordinary:
    logged at INFO with its close code, never as an application error."""
    try:
        yield
    except WebSocketDisconnect as gone:
        log.info("client went away", extra={"close_code": gone.code})
    except OSError as gone:
        # uvicorn's ClientDisconnected is an OSError: the transport was already closed.
        log.info("client went away", extra={"error": type(gone).__name__, "close_code": 1006})


async def conversation_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    # An ASGI app rather than a Starlette endpoint: the session keeps the server's send.
    websocket = WebSocket(scope, receive, send)
    session = Session(websocket, websocket.app.state.node, send)
    with _client_may_leave():
        await session.serve_conversation(websocket.path_params["conversation_id"])


async def chat_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    session = Session(websocket, websocket.app.state.node, send)
    with _client_may_leave():
        await session.serve_chat(websocket.path_params["chat_id"])


def socket_routes() -> Sequence[Any]:
    from starlette.routing import WebSocketRoute

    # The Chats view's socket builds on this module's Session: imported here, not above.
    from server.chat_list_socket import chat_list_endpoint

    return [
        WebSocketRoute(
            "/v1/conversations/{conversation_id}/ws", _AsgiEndpoint(conversation_endpoint)
        ),
        WebSocketRoute("/v1/chats/ws", chat_list_endpoint),
        WebSocketRoute("/v1/chats/{chat_id}/ws", _AsgiEndpoint(chat_endpoint)),
    ]


@dataclass(frozen=True, slots=True)
class _AsgiEndpoint:
    """A route's ASGI app as such (Starlette wraps a plain function as a session)."""

    app: Callable[[Scope, Receive, Send], Awaitable[None]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

"""``WS /v1/chats/ws``: the Chats view, live (docs/PROTOCOL.md, additions).

After ``hello`` the socket sends ``welcome``, then ``chats`` (every chat the caller
may see, as ``GET /v1/chats`` lists them, with their newest news), then one ``chat``
frame per chat that appears or changes. The handshake, ``ping``, ``refresh``, the
token's expiry, the rate limit and the bounded outbound queue are the chat sockets'
(:class:`server.sockets.Session`); what is new here is the pump.

Invariants:

* The pump follows the whole workspace's live events (the bus's workspace
  subscription, on every node) and passes on nothing of a chat until the host's
  ownership check has said the caller may see it (:meth:`ConversationHost.visible_chat`);
  for everyone else a chat does not exist, so the check is never an ``ACCESS_DENIED``.
* One ``PHI_RECORD_VIEWED`` for the list (written by the host before it is sent), and
  one for each chat that becomes visible later, before its entry leaves. The records
  name ids, never titles or text.
* The list is subscribed to before it is read, so nothing committed meanwhile is lost;
  a subscription the bus ends (the client fell behind, Redis came back) closes the
  socket with 4001, and the client reconnects for a fresh list.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.websockets import WebSocket

from agents.exceptions import SwitchboardError, Unavailable
from agents.models import Chat, ChatKind, StreamEvent, Task, TaskUpdate
from agents.ownership import may_access_task
from agents.ports import AuditEntry, AuditType
from server import protocol
from server.chat_list import ChatEntry, ChatList
from server.http_errors import error_code_for
from server.node import Node
from server.protocol import CloseCode, ErrorCode, FrameError
from server.sockets import Session, _client_may_leave, _Close, _payload, _TokenBucket

CHATS_CHANNEL = "ws:/v1/chats/ws"


class ChatListSession(Session):
    """One Chats-view socket, from ``hello`` to close."""

    def __init__(self, websocket: WebSocket, node: Node) -> None:
        super().__init__(websocket, node)
        self.chats = ChatList()

    async def serve_chat_list(self) -> None:
        hello = await self.handshake()
        if hello is None or self.principal is None:
            return
        registry = self.node.sessions
        if (
            registry.connections_of(self.principal_key)
            >= self.settings.max_connections_per_principal
        ):
            await self._close_now(CloseCode.RATE_LIMITED)
            return
        registry.add(self)
        try:
            with self._scope:
                await self._run_list()
        except _Close as close:
            self._close_code = close.code
        finally:
            registry.remove(self)
            self._outbox.close()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._close_now(self._close_code or CloseCode.NORMAL_CLOSURE)
            self._mark_closed()

    async def _run_list(self) -> None:
        assert self.principal is not None
        buffer = max(self.settings.outbound_queue_size * 32, 8192)
        bus = self.node.bus
        with bus.subscribe_workspace(self.principal.workspace_id, max_buffer=buffer) as live:
            try:
                entries = await self._load()
            except Unavailable:
                raise _Close(CloseCode.INTERNAL_ERROR) from None
            self.chats = ChatList(entries)
            await self._send_now({"type": "welcome", "protocol": protocol.PROTOCOL_VERSION})
            await self._send_now(
                {"type": "chats", "chats": [e.to_wire() for e in self.chats.entries()]}
            )
            with self._expiring():
                try:
                    async with anyio.create_task_group() as tg:
                        self._go_live(tg)
                        tg.start_soon(self._guard, self._read_list, tg)
                        tg.start_soon(self._guard, self._pump_list, tg, live)
                finally:
                    self._no_longer_live()
            self._check_expired()

    async def _load(self) -> list[ChatEntry]:
        """The caller's chats as the host lists them (its one audited read)."""
        assert self.principal is not None
        host, store = self.node.host, self.node.store
        chats = await host.list_chats(self.principal, channel=CHATS_CHANNEL)
        # One query per conversation, not per task: only the listed chats' tasks count.
        tasks: dict[str, Task] = {}
        for conversation_id in sorted(
            {c.conversation_id for c in chats if c.kind is ChatKind.TASK}
        ):
            for task in await store.list_tasks(self.principal.workspace_id, conversation_id):
                tasks[task.id] = task
        return [await self._entry(chat, tasks.get(chat.task_id or "")) for chat in chats]

    async def _entry(self, chat: Chat, task: Task | None) -> ChatEntry:
        store = self.node.store
        last = await store.last_seq(chat.id)
        newest = await store.events_after(chat.id, last - 1, 1) if last else []
        return ChatEntry.of(chat, task, last_seq=last, updated_at=newest[0].ts if newest else None)

    async def _read_list(self) -> None:
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
            elif isinstance(frame, protocol.Refresh):
                await self._refresh(frame)
            elif isinstance(frame, protocol.Ping):
                self._queue(protocol.pong(frame.id))
            elif isinstance(frame, protocol.Hello):
                # A second hello: the socket is already greeted.
                self._queue(protocol.error(ErrorCode.BAD_FRAME))
            else:
                # Commands name a conversation or a task: this socket has neither.
                self._queue(protocol.error(ErrorCode.UNKNOWN_TYPE, id=getattr(frame, "id", None)))

    async def _pump_list(self, live: Any) -> None:
        async for event in live.receive:
            try:
                await self._take(event)
            except Unavailable:
                # Fail closed: nothing unaudited leaves; the client reloads the list.
                raise _Close(CloseCode.INTERNAL_ERROR) from None
            except SwitchboardError as exc:
                self._queue(protocol.error(error_code_for(exc)))
        # The bus ended our subscription: we fell behind it, or Redis came back.
        raise _Close(CloseCode.SLOW_CONSUMER)

    async def _take(self, event: StreamEvent) -> None:
        assert self.principal is not None
        if time.time() >= self.expires_at:
            # The watcher may not have run yet: nothing leaves on an expired token.
            raise _Close(CloseCode.UNAUTHORIZED)
        applied = self.chats.apply(event)
        for chat_id in applied.unknown:
            body = event.body
            if (
                isinstance(body, TaskUpdate)
                and body.task.chat_id == chat_id
                and not may_access_task(self.principal, body.task)
            ):
                # The event's own copy of the task already says no: no look-up needed.
                self.chats.hide(chat_id)
                continue
            seen = await self.node.host.visible_chat(self.principal, chat_id)
            if seen is None:
                self.chats.hide(chat_id)
                continue
            entry = await self._entry(seen.chat, seen.task)
            # A new chat's contents (its title, its task's progress) are a read.
            await self._audit_new_chat(seen.chat)
            self._queue({"type": "chat", "chat": self.chats.add(entry).to_wire()})
        for entry in applied.changed:
            self._queue({"type": "chat", "chat": entry.to_wire()})

    async def _audit_new_chat(self, chat: Chat) -> None:
        assert self.principal is not None
        await self.node.audit.record(
            AuditEntry(
                type=AuditType.PHI_RECORD_VIEWED,
                actor=self.principal,
                channel=CHATS_CHANNEL,
                task_id=chat.task_id,
                chat_id=chat.id,
                conversation_id=chat.conversation_id,
                on_behalf_of=(self.principal.act_for,) if self.principal.act_for else (),
            )
        )


async def chat_list_endpoint(websocket: WebSocket) -> None:
    node: Node = websocket.app.state.node
    session = ChatListSession(websocket, node)
    with _client_may_leave():
        await session.serve_chat_list()

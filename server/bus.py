"""The bus between nodes: stored events fanned out to every node's watchers.

Chosen by URL, like broadcaster's backends: no ``REDIS_URL`` means the in-process
:class:`~agents.memory.MemoryBus`; ``redis://`` adds :class:`RedisBus`, which delivers
locally at once and relays through Redis to the other nodes. Events are published
only after they are stored, and a watcher that sees a ``seq`` gap fills it from the
store, so a message Redis drops costs latency, never data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus
from redis.exceptions import RedisError

from agents.exceptions import SwitchboardError, Unavailable, first_type
from agents.memory import MemoryBus
from agents.models import StreamEvent, body_from_json, body_to_json, parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

CHANNEL = "switchboard:events"

FAILURES = (RedisError, OSError, TimeoutError)
"""What a Redis that is down, hung or refusing raises (a timeout included)."""


def encode_events(node_id: str, workspace_id: str, events: Sequence[StreamEvent]) -> str:
    return json.dumps(
        {
            "node": node_id,
            "ws": workspace_id,
            "events": [
                {
                    "chat_id": e.chat_id,
                    "seq": e.seq,
                    "ts": rfc3339(e.ts),
                    "body": body_to_json(e.body),
                }
                for e in events
            ],
        },
        separators=(",", ":"),
    )


def decode_events(data: str | bytes) -> tuple[str, list[StreamEvent]]:
    """The sending node's id and its events; raises ``ValueError`` on a malformed message."""
    node, _, events = decode_message(data)
    return node, events


def decode_message(data: str | bytes) -> tuple[str, str | None, list[StreamEvent]]:
    """The sending node's id, the events' workspace and the events; raises
    ``ValueError`` on a malformed message."""
    try:
        message: dict[str, Any] = json.loads(data)
        events = [
            StreamEvent(
                chat_id=str(e["chat_id"]),
                seq=int(e["seq"]),
                ts=parse_rfc3339(e["ts"]),
                body=body_from_json(e["body"]),
            )
            for e in message["events"]
        ]
        workspace = message.get("ws")
        return str(message["node"]), workspace if isinstance(workspace, str) else None, events
    except (KeyError, TypeError) as exc:
        raise ValueError("malformed bus message") from exc


CatchUp = Callable[[Sequence[str]], Awaitable[list[StreamEvent]]]
"""Given chat ids, the newest stored event of each (those that have one)."""

OUTBOX_SIZE = 10_000
"""Messages waiting for Redis. When full, new ones are dropped: they are stored, and
listeners on other nodes fill the gap from the store."""

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0


class RedisBus(MemoryBus):
    """A :class:`MemoryBus` for this node's watchers, relayed to other nodes via Redis.

    Start :meth:`run` in the node's task group; it reports started at once, connected
    or not, and from then on keeps a subscription to Redis, reconnecting with backoff
    whenever Redis goes away or stops answering. Meanwhile this node's own watchers
    are served as ever, publishing never waits on Redis (an outbox, drained by
    :meth:`run`), and ``connected`` is false (``/readyz`` says not ready). On each
    reconnect the newest stored event of every chat watched here is handed to its
    watchers (*catch_up*), so each fills from the store whatever Redis missed; a
    workspace's listeners are ended instead, and reload from the store.

    Log lines name a failure by its type alone: redis-py's messages carry addresses.
    """

    def __init__(
        self, url: str, node_id: str, *, catch_up: CatchUp | None = None, timeout: float = 1.0
    ) -> None:
        super().__init__()
        import redis.asyncio as redis  # asyncio-only, and only needed with REDIS_URL

        self._redis = redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=2 * timeout,
            # The subscription pings when idle, so a Redis that hangs is noticed.
            health_check_interval=2 * timeout,
        )
        self._node_id = node_id
        self._timeout = timeout
        self.catch_up = catch_up
        self.connected = False
        self.reconnects = 0
        self.dropped = 0
        self._outbox_send, self._outbox_receive = anyio.create_memory_object_stream[str](
            OUTBOX_SIZE
        )
        self._channels: dict[str, Callable[[bytes | str], None]] = {}

    def add_channel(self, channel: str, handler: Callable[[bytes | str], None]) -> None:
        """Also hand every message of *channel* to *handler* (before :meth:`run`).

        The handler runs in the receiving loop: it must not block (it queues).
        """
        self._channels[channel] = handler

    @property
    def client(self) -> Any:
        """The Redis client, shared with :class:`~server.leases.RedisLeases`."""
        return self._redis

    async def publish(self, workspace_id: str, events: Sequence[StreamEvent]) -> None:
        """Deliver to this node's watchers at once; queue for the other nodes. Not a
        checkpoint, as :meth:`agents.memory.MemoryBus.publish`."""
        self.publish_nowait(events, workspace_id)
        if not self.connected:
            self.dropped += 1
            return
        try:
            self._outbox_send.send_nowait(encode_events(self._node_id, workspace_id, events))
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            self.dropped += 1

    async def ping(self) -> None:
        """Raise :class:`Unavailable` unless Redis answers now (readiness)."""
        if not self.connected:
            raise Unavailable("bus unavailable")
        try:
            with anyio.fail_after(self._timeout):
                await self._redis.ping()
        except FAILURES as exc:
            raise Unavailable("bus unavailable") from exc

    def statistics(self) -> dict[str, int]:
        return {
            **super().statistics(),
            "connected": int(self.connected),
            "reconnects": self.reconnects,
            "dropped": self.dropped,
        }

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Relay events between this node and the others until cancelled.

        Reports started once the first connection has been tried (made or not).
        """
        backoff = BACKOFF_FIRST_S
        ever = False
        started = False
        try:
            while True:
                try:
                    async with anyio.create_task_group() as tg:
                        pubsub = self._redis.pubsub()
                        try:
                            try:
                                with anyio.fail_after(self._timeout):
                                    await pubsub.subscribe(CHANNEL, *self._channels)
                            finally:
                                # Started after the first attempt, whatever its outcome:
                                # a node starts (not ready) while Redis is away.
                                if not started:
                                    started = True
                                    task_status.started()
                            self.connected = True
                            backoff = BACKOFF_FIRST_S
                            if ever:
                                self.reconnects += 1
                                log.info("bus reconnected")
                                tg.start_soon(self._catch_up)
                            ever = True
                            tg.start_soon(self._send_outbox)
                            await self._receive(pubsub)
                        finally:
                            self.connected = False
                            tg.cancel_scope.cancel()
                            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                except* FAILURES as group:
                    log.warning("bus disconnected", extra={"error": first_type(group)})
                except* Exception as group:
                    # Not Redis's doing, but the relay must outlive it all the same.
                    log.error("bus failed unexpectedly", extra={"error": first_type(group)})
                self._discard_outbox()
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            self.connected = False
            self._outbox_send.close()
            self._outbox_receive.close()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._redis.aclose()

    async def _receive(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            channel = message.get("channel")
            if isinstance(channel, bytes):
                channel = channel.decode()
            handler = self._channels.get(str(channel))
            if handler is not None:
                handler(message["data"])
                continue
            try:
                node, workspace, events = decode_message(message["data"])
            except ValueError:
                log.warning("dropped a malformed bus message")
                continue
            if node != self._node_id:
                self.publish_nowait(events, workspace)

    async def _send_outbox(self) -> None:
        async for data in self._outbox_receive:
            with anyio.fail_after(self._timeout):
                await self._redis.publish(CHANNEL, data)

    def _discard_outbox(self) -> None:
        # What waited for a Redis that went away is stored; listeners fill from there.
        while True:
            try:
                self._outbox_receive.receive_nowait()
            except anyio.WouldBlock:
                return
            self.dropped += 1

    async def _catch_up(self) -> None:
        # A workspace's listeners cannot be caught up chat by chat (they follow chats
        # not yet known here): they are ended, and reload what is stored.
        self.end_workspace_subscriptions()
        if self.catch_up is None:
            return
        chats = list(self._subscribers)
        try:
            newest = await self.catch_up(chats)
        except SwitchboardError as exc:
            log.warning("catch-up failed", extra={"error": exc.code})
            return
        self.publish_nowait(newest)

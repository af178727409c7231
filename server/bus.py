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
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskStatus

from agents.memory import MemoryBus
from agents.models import StreamEvent, body_from_json, body_to_json, parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

CHANNEL = "switchboard:events"


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
        return str(message["node"]), events
    except (KeyError, TypeError) as exc:
        raise ValueError("malformed bus message") from exc


class RedisBus(MemoryBus):
    """A :class:`MemoryBus` for this node's watchers, relayed to other nodes via Redis.

    Start :meth:`run` in the node's task group; it reports started once subscribed.
    """

    def __init__(self, url: str, node_id: str) -> None:
        super().__init__()
        import redis.asyncio as redis  # asyncio-only, and only needed with REDIS_URL

        self._redis = redis.from_url(url)
        self._node_id = node_id

    @property
    def client(self) -> Any:
        """The Redis client, shared with :class:`~server.leases.RedisLeases`."""
        return self._redis

    async def publish(self, workspace_id: str, events: Sequence[StreamEvent]) -> None:
        self.publish_nowait(events)
        await self._redis.publish(CHANNEL, encode_events(self._node_id, workspace_id, events))

    async def ping(self) -> None:
        await self._redis.ping()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Relay other nodes' events to this node's watchers until cancelled."""
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            task_status.started()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                try:
                    node, events = decode_events(message["data"])
                except ValueError:
                    log.warning("dropped a malformed bus message")
                    continue
                if node != self._node_id:
                    self.publish_nowait(events)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                await self._redis.aclose()

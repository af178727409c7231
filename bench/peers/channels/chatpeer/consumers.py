"""The conversation socket: one Channels consumer per connection."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chatpeer import store
from chatpeer.models import Conversation
from chatpeer.tokens import verify

AGENT_ID = "bench-dispatcher"
AGENT_NAME = "Dispatcher"

_append = database_sync_to_async(store.append_message)
_find = database_sync_to_async(store.find_conversation)
_events_after = database_sync_to_async(store.events_after)


class DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    frame = dict(pairs)
    if len(frame) != len(pairs):
        raise DuplicateKey
    return frame


def parse(text: str) -> dict[str, Any] | None:
    """A client frame as PROTOCOL.md reads it, or ``None`` for a ``bad_frame``."""
    try:
        frame = json.loads(text, object_pairs_hook=_object)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) and isinstance(frame.get("type"), str) else None


def agent_reply(text: str) -> str:
    """What the bench workspace's dispatcher answers to ``echo TOKEN``: the same words."""
    words = text.split()
    if words and words[0].lower() == "echo":
        return text
    return f"Unknown bench command: {words[0].lower() if words else '(empty)'}."


class ConversationConsumer(AsyncWebsocketConsumer):
    """``/v1/conversations/{id}/ws`` for the conversation's person."""

    conversation: Conversation | None = None
    delivered = 0
    """The highest ``seq`` sent on this socket: an event that the replay already sent
    can come again through the group, and is then dropped."""

    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = parse(text_data) if text_data is not None else None
        if self.conversation is None:
            await self.hello(frame)
            return
        if frame is None:
            await self.error(None, "bad_frame", "malformed frame")
            return
        frame_id = frame.get("id")
        kind = frame["type"]
        if kind == "say":
            await self.say(frame_id, frame.get("text"))
        elif kind == "ping" and isinstance(frame_id, str):
            await self.send_frame({"type": "pong", "id": frame_id})
        elif kind == "ping":
            await self.error(None, "bad_frame", "malformed frame")
        else:
            await self.error(frame_id, "unknown_type", "unknown frame type")

    async def hello(self, frame: dict[str, Any] | None) -> None:
        if frame is None or frame["type"] != "hello":
            await self.close(4401)
            return
        person = verify(frame.get("token"))
        if person is None:
            await self.close(4401)
            return
        conversation = await _find(self.scope["url_route"]["kwargs"]["conversation_id"])
        # Another person's conversation is answered as one that does not exist.
        if conversation is None or (conversation.workspace, conversation.owner) != (
            person.workspace,
            person.id,
        ):
            await self.close(4404)
            return
        after = frame.get("resume_after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            await self.error(None, "bad_frame", "malformed frame")
            return
        self.person = person
        self.group = f"conversation.{conversation.id}"
        # Joined before the replay is read: nothing stored in between is missed (what
        # comes twice is dropped by `delivered`). `groups` is what disconnect discards.
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.groups.append(self.group)
        last_seq, events = await _events_after(conversation, after)
        self.conversation = conversation
        await self.send_frame(
            {
                "type": "welcome",
                "protocol": 1,
                "conversation_id": conversation.id,
                "last_seq": last_seq,
            }
        )
        if after > last_seq:
            await self.error(
                None, "resync", "resume_after is past the end of the stream: drop your copy"
            )
        for event in events:
            await self.send_frame(event)
        self.delivered = last_seq

    async def say(self, frame_id: object, text: object) -> None:
        if not isinstance(frame_id, str) or not frame_id or not isinstance(text, str) or not text:
            await self.error(
                frame_id if isinstance(frame_id, str) else None, "bad_frame", "malformed frame"
            )
            return
        assert self.conversation is not None
        event = await _append(self.conversation, "user", self.person.id, self.person.name, text)
        await self.channel_layer.group_send(self.group, {"type": "chat.event", "event": event})
        await self.send_frame({"type": "ack", "id": frame_id, "seq": event["seq"]})
        # The agent's turn: its reply stored, then sent to the conversation's sockets.
        reply = await _append(self.conversation, "agent", AGENT_ID, AGENT_NAME, agent_reply(text))
        await self.channel_layer.group_send(self.group, {"type": "chat.event", "event": reply})

    async def chat_event(self, message: dict[str, Any]) -> None:
        """An event the group delivers: sent unless this socket has it already."""
        event = message["event"]
        if event["seq"] > self.delivered:
            self.delivered = event["seq"]
            await self.send_frame(event)

    async def error(self, frame_id: str | None, code: str, text: str) -> None:
        frame: dict[str, Any] = {"type": "error"}
        if frame_id is not None:
            frame["id"] = frame_id
        await self.send_frame({**frame, "code": code, "message": text})

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

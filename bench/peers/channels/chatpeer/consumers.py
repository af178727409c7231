"""The conversation socket: one Channels consumer per connection."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chatpeer import store
from chatpeer.frames import ERROR_TEXTS, Hello, Ping, Refusal, Say, parse
from chatpeer.models import Conversation
from chatpeer.tokens import Person, verify

AGENT_ID = "bench-dispatcher"
AGENT_NAME = "Dispatcher"

_append = database_sync_to_async(store.append_message)
_find = database_sync_to_async(store.find_conversation)
_events_after = database_sync_to_async(store.events_after)


def agent_reply(text: str) -> str:
    """What the bench workspace's dispatcher answers to ``echo TOKEN``: the same words."""
    words = text.split()
    if words and words[0].lower() == "echo":
        return text
    return f"Unknown bench command: {words[0].lower() if words else '(empty)'}."


class ConversationConsumer(AsyncWebsocketConsumer):
    """``/v1/conversations/{id}/ws`` for the conversation's person."""

    conversation: Conversation | None = None
    person: Person | None = None
    group = ""
    delivered = 0
    """The highest ``seq`` sent on this socket: an event that the replay already sent
    can come again through the group, and is then dropped."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = parse(text_data)
        if isinstance(frame, Refusal):
            await self.error(frame.id, frame.code)
        elif self.conversation is None:
            if isinstance(frame, Hello):
                await self.hello(frame)
            else:
                await self.error(frame.id, "unauthorized")
        elif isinstance(frame, Say):
            await self.say(frame)
        elif isinstance(frame, Ping):
            await self.send_frame({"type": "pong", "id": frame.id})
        else:
            await self.error(None, "bad_frame")  # a second hello: already greeted

    async def hello(self, frame: Hello) -> None:
        person = verify(frame.token)
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
        after = frame.resume_after or 0
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
            await self.error(None, "resync")
        for event in events:
            await self.send_frame(event)
        self.delivered = last_seq

    async def say(self, frame: Say) -> None:
        assert self.conversation is not None
        assert self.person is not None
        person = self.person
        event = await _append(self.conversation, "user", person.id, person.name, frame.text)
        await self.channel_layer.group_send(self.group, {"type": "chat.event", "event": event})
        await self.send_frame({"type": "ack", "id": frame.id, "seq": event["seq"]})
        # The agent's turn: its reply stored, then sent to the conversation's sockets.
        text = agent_reply(frame.text)
        reply = await _append(self.conversation, "agent", AGENT_ID, AGENT_NAME, text)
        await self.channel_layer.group_send(self.group, {"type": "chat.event", "event": reply})

    async def chat_event(self, message: dict[str, Any]) -> None:
        """An event the group delivers: sent unless this socket has it already."""
        event = message["event"]
        if event["seq"] > self.delivered:
            self.delivered = event["seq"]
            await self.send_frame(event)

    async def error(self, frame_id: str | None, code: str) -> None:
        frame: dict[str, Any] = {"type": "error"}
        if frame_id is not None:
            frame["id"] = frame_id
        await self.send_frame({**frame, "code": code, "message": ERROR_TEXTS[code]})

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

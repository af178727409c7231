"""The ORM's side: conversations created, messages appended with the next ``seq``, and
the events after a ``seq`` read back. Each function is sync, for asgiref's ORM thread."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chatpeer.models import Conversation, Message


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def create_conversation(workspace: str, owner: str) -> Conversation:
    return Conversation.objects.create(
        id=new_id("conv"), chat_id=new_id("chat"), workspace=workspace, owner=owner
    )


def find_conversation(conversation_id: str) -> Conversation | None:
    return Conversation.objects.filter(pk=conversation_id).first()


def append_message(
    conversation: Conversation, role: str, author_id: str, author_name: str, text: str
) -> dict[str, Any]:
    """Store one message as the chat's next event (one transaction); return the event."""
    with transaction.atomic():
        # The increment and the insert commit together: seq grows by exactly 1.
        Conversation.objects.filter(pk=conversation.pk).update(last_seq=F("last_seq") + 1)
        seq = Conversation.objects.values_list("last_seq", flat=True).get(pk=conversation.pk)
        message = Message.objects.create(
            conversation=conversation,
            seq=seq,
            message_id=new_id("msg"),
            role=role,
            author_id=author_id,
            author_name=author_name,
            text=text,
            ts=timezone.now(),
        )
    return message.as_event(conversation.chat_id)


def events_after(conversation: Conversation, after: int) -> tuple[int, list[dict[str, Any]]]:
    """The chat's ``last_seq`` and its stored events with ``seq > after``, oldest first."""
    with transaction.atomic():
        last_seq = Conversation.objects.values_list("last_seq", flat=True).get(pk=conversation.pk)
        messages = Message.objects.filter(conversation=conversation, seq__gt=after).order_by("seq")
        return last_seq, [m.as_event(conversation.chat_id) for m in messages]

"""A conversation (one chat, one person) and its stored messages, numbered by ``seq``."""

from __future__ import annotations

from typing import Any

from django.db import models


class Conversation(models.Model):
    id = models.CharField(primary_key=True, max_length=40)
    chat_id = models.CharField(unique=True, max_length=40)
    workspace = models.CharField(max_length=100)
    owner = models.CharField(max_length=100)
    last_seq = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE)
    seq = models.IntegerField()
    message_id = models.CharField(unique=True, max_length=40)
    role = models.CharField(max_length=10)
    author_id = models.CharField(max_length=100)
    author_name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, default="reply")
    text = models.TextField()
    ts = models.DateTimeField()

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["conversation", "seq"], name="one_event_per_seq"),
        )

    def as_event(self, chat_id: str) -> dict[str, Any]:
        """The stream event of PROTOCOL.md (``message``), as it goes on the wire."""
        return {
            "seq": self.seq,
            "type": "message",
            "chat_id": chat_id,
            "ts": self.ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.ts.microsecond // 1000:03d}Z",
            "message_id": self.message_id,
            "role": self.role,
            "author": {"id": self.author_id, "name": self.author_name},
            "kind": self.kind,
            "text": self.text,
        }

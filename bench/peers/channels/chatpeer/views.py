"""The HTTP side: start a conversation, and readiness."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chatpeer import store
from chatpeer.models import Conversation
from chatpeer.tokens import verify


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
@require_POST
def create_conversation(request: HttpRequest) -> JsonResponse:
    """``POST /v1/conversations`` → 201 ``{"conversation_id", "chat_id"}``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    person = verify(token.strip()) if scheme.lower() == "bearer" else None
    if person is None:
        return _error(401, "unauthorized", "a valid token is required")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(400, "bad_request", "the body must be a JSON object")
    conversation = store.create_conversation(person.workspace, person.id)
    return JsonResponse(
        {"conversation_id": conversation.id, "chat_id": conversation.chat_id}, status=201
    )


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    Conversation.objects.exists()
    return JsonResponse({"status": "ready"})

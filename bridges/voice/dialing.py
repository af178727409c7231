"""Dialing: what a call needs before its socket opens — the caller's token, a
conversation (created over HTTP), and that conversation's socket URL."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import anyio.to_thread

from bridges.wire import BRIDGE_ID, mint_token

from .exceptions import Refused

__all__ = ["BRIDGE_ID", "conversation_ws_url", "create_conversation", "mint_token"]


async def create_conversation(server: str, token: str, agent_id: str | None = None) -> str:
    """``POST /v1/conversations`` for the token's caller; returns the conversation id.

    Raises :class:`Refused` with the server's error code, or ``unavailable`` if the
    server cannot be reached.
    """
    body = json.dumps({"agent_id": agent_id} if agent_id else {}).encode()
    request = urllib.request.Request(
        f"{server.rstrip('/')}/v1/conversations",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    def post() -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return dict(json.load(answer))
        except urllib.error.HTTPError as exc:
            try:
                code = str(json.load(exc)["error"]["code"])
            except (ValueError, KeyError, TypeError):
                code = "internal"
            raise Refused(code, f"HTTP {exc.code}") from None
        except OSError as exc:
            raise Refused("unavailable", type(exc).__name__) from None

    answer = await anyio.to_thread.run_sync(post)
    conversation_id = answer.get("conversation_id")
    if not isinstance(conversation_id, str):
        raise Refused("internal", "no conversation_id in the answer")
    return conversation_id


def conversation_ws_url(server: str, conversation_id: str) -> str:
    """The conversation socket's URL for an ``http(s)://`` server URL."""
    parts = urllib.parse.urlsplit(server)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError("the server URL must be http:// or https://")
    path = f"{parts.path.rstrip('/')}/v1/conversations/{urllib.parse.quote(conversation_id)}/ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))

"""The wire contract as a client sees it (``docs/PROTOCOL.md``): close codes, voice
activity states, and the ``service`` tokens a bridge presents for its callers.

These repeat the protocol's published values rather than import the server's, so that
a bridge depends on the contract alone.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Mapping
from typing import Any

import jwt

DEVELOPMENT_SECRET = "switchboard-development-secret-do-not-deploy"
"""The server's public development secret (its default when ``SWITCHBOARD_SECRET`` is
unset); only for demos against a development server."""

BRIDGE_ID = "voice-bridge"
"""The ``sub`` of the service tokens the bridges mint for their callers."""


class CloseCode(enum.IntEnum):
    """WebSocket close codes of PROTOCOL.md, Close codes."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SLOW_CONSUMER = 4001
    UNAUTHORIZED = 4401
    NOT_FOUND = 4404
    REPLACED = 4409
    RATE_LIMITED = 4429

    @property
    def reason(self) -> str:
        """A short human reason for the code."""
        return _CLOSE_REASONS[self]


_CLOSE_REASONS: Mapping[CloseCode, str] = {
    CloseCode.NORMAL_CLOSURE: "normal closure",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.MESSAGE_TOO_BIG: "frame too large",
    CloseCode.INTERNAL_ERROR: "internal error",
    CloseCode.SLOW_CONSUMER: "slow consumer",
    CloseCode.UNAUTHORIZED: "unauthorized",
    CloseCode.NOT_FOUND: "not found",
    CloseCode.REPLACED: "replaced by a newer connection",
    CloseCode.RATE_LIMITED: "rate limited",
}

RESUMABLE = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SLOW_CONSUMER,
        CloseCode.RATE_LIMITED,
        1006,
    }
)
"""Close codes after which PROTOCOL.md says to reconnect with ``resume_after``; 1006 is
a dropped connection (no close frame), the usual way a network blip looks."""


class SpeechState(enum.StrEnum):
    """The ``state`` of a ``speech`` frame: the caller's voice activity."""

    STARTED = "started"
    STOPPED = "stopped"


def new_call_id() -> str:
    """A fresh, opaque id for one phone call (a token's ``call`` claim)."""
    return f"call-{secrets.token_hex(8)}"


def mint_token(
    secret: str,
    *,
    workspace: str,
    caller: str,
    name: str | None = None,
    ttl: float = 3600,
    sub: str = BRIDGE_ID,
    call: str | None = None,
) -> str:
    """A ``service`` token acting for *caller* in *workspace*, signed with the server's
    *secret* (PROTOCOL.md, Identity). For demos and operators; a deployment may issue
    its own with ``switchboard token``. *call* names the phone call (PROTOCOL.md,
    Callers): the caller is verified once per call, and a token renewed for the same
    call keeps that.

    Raises ``ValueError`` for a non-positive *ttl* or a secret shorter than HS256 allows.
    """
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    if len(secret.encode()) < 32:
        raise ValueError("the secret must be at least 32 bytes")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "ws": workspace,
        "role": "service",
        "act_for": caller,
        "iat": now,
        "exp": now + int(ttl),
    }
    if name is not None:
        claims["name"] = name
    if call is not None:
        claims["call"] = call
    return jwt.encode(claims, secret, algorithm="HS256")

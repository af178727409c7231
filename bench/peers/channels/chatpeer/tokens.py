"""Bearer tokens as Switchboard checks them: HS256 only, ``exp``, ``sub``, ``ws`` and
``role`` required, a person of this workspace."""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from django.conf import settings

MAX_TOKEN_CHARS = 8_192
_REQUIRED_CLAIMS = ["exp", "sub", "ws", "role"]


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    workspace: str
    name: str


def verify(token: object) -> Person | None:
    """The person a valid, unexpired token names, or ``None`` for any other token."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        return None
    try:
        claims = jwt.decode(
            token,
            settings.TOKEN_SECRET,
            algorithms=["HS256"],
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError:
        return None
    sub, workspace, name = claims["sub"], claims["ws"], claims.get("name")
    if claims["role"] != "person" or not isinstance(sub, str) or workspace != settings.WORKSPACE:
        return None
    return Person(sub, workspace, name if isinstance(name, str) and name else "You")

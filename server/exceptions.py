"""The server's exceptions.

::

    ServerError
    ├── SettingsError   an environment variable is malformed; names it, never a secret
    └── Unauthorized    a token is missing, malformed, forged or expired (401, 4401)

Each class's ``code`` is the PROTOCOL.md error code it becomes on the wire. Messages
hold no token, claim value, secret or record contents: they may reach logs and
clients.
"""

from __future__ import annotations


class ServerError(Exception):
    """Base of every error the server raises on purpose."""

    code = "internal"


class SettingsError(ServerError):
    """The environment holds a value the server cannot run with.

    Raised at start-up, before anything listens. ``variable`` is the offending name.
    """

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Unauthorized(ServerError):
    """The caller's credentials were refused; ``reason`` is one fixed, safe phrase.

    The reason is for logs; clients are told only ``unauthorized``, so that a forger
    learns nothing about which check failed.
    """

    code = "unauthorized"

    def __init__(self, reason: str = "invalid token") -> None:
        super().__init__(f"unauthorized: {reason}")
        self.reason = reason

"""What the security tests share: hostile tokens, random ids, and the stored audit trail."""

from __future__ import annotations

import secrets
import sqlite3
from datetime import timedelta
from typing import Any

from agents.models import utcnow
from server.auth import issue_token
from server.settings import DEVELOPMENT_SECRET
from tests.e2e.conftest import ServerProcess

AUDIT_COLUMNS = (
    "seq",
    "id",
    "workspace_id",
    "type",
    "action",
    "recorded",
    "outcome",
    "reason",
    "actor_kind",
    "actor_id",
    "on_behalf_of",
    "channel",
    "node_id",
    "task_id",
    "chat_id",
    "conversation_id",
    "request_id",
    "prev_hash",
    "hash",
)


def expired_token(sub: str = "pat", *, workspace: str = "demo", role: str = "person") -> str:
    """A token of *sub* that was valid for a minute, an hour ago."""
    an_hour_ago = utcnow() - timedelta(hours=1)
    return issue_token(
        DEVELOPMENT_SECRET, workspace=workspace, sub=sub, role=role, ttl=60, now=an_hour_ago
    )


def forged_token(sub: str = "pat", *, workspace: str = "demo") -> str:
    """A well-formed, unexpired token of *sub* signed with a secret the server does not hold."""
    return issue_token(
        "not-the-server-secret-" + "x" * 32, workspace=workspace, sub=sub, role="person"
    )


def random_id(prefix: str) -> str:
    """An id of the server's own shape (``task_…``) that was never issued."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def database_path(server: ServerProcess) -> str:
    prefix = "sqlite:///"
    assert server.database_url.startswith(prefix), server.database_url
    return server.database_url[len(prefix) :]


def audit_rows(server: ServerProcess, *, after: int = 0) -> list[dict[str, Any]]:
    """Every row of the server's ``audit_events`` table with ``seq > after``, in order."""
    connection = sqlite3.connect(f"file:{database_path(server)}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events WHERE seq > ? ORDER BY seq",
            (after,),
        ).fetchall()
    finally:
        connection.close()
    return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in rows]


def audit_head(server: ServerProcess) -> int:
    """The ``seq`` of the newest audit record (0 for an empty trail)."""
    connection = sqlite3.connect(f"file:{database_path(server)}?mode=ro", uri=True, timeout=10)
    try:
        (head,) = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()
    finally:
        connection.close()
    return int(head)

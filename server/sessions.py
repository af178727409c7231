"""The node's open sockets: one live connection per conversation, a cap per principal."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import anyio

REPLACED = 4409


class Closable(Protocol):
    principal_key: str
    claim_number: int

    def close_soon(self, code: int) -> None:
        """Ask the socket to close with *code*; returns at once."""
        ...

    async def wait_closed(self) -> None: ...


class SessionRegistry:
    """Which sockets are open, by conversation and by principal."""

    def __init__(self) -> None:
        self._open: set[Closable] = set()
        self._by_conversation: dict[str, Closable] = {}
        self._per_principal: Counter[str] = Counter()
        # The highest claim number another node announced for a conversation held here.
        self._remote_claims: dict[str, int] = {}

    def add(self, session: Closable) -> None:
        self._open.add(session)
        self._per_principal[session.principal_key] += 1

    def remove(self, session: Closable) -> None:
        if session in self._open:
            self._open.discard(session)
            self._per_principal[session.principal_key] -= 1
            if self._per_principal[session.principal_key] <= 0:
                del self._per_principal[session.principal_key]
        for conversation_id, holder in list(self._by_conversation.items()):
            if holder is session:
                del self._by_conversation[conversation_id]
                self._remote_claims.pop(conversation_id, None)

    def connections_of(self, principal_key: str) -> int:
        return self._per_principal[principal_key]

    def claim(self, conversation_id: str, session: Closable) -> Closable | None:
        """Make *session* the conversation's live connection; return the one it replaces."""
        previous = self._by_conversation.get(conversation_id)
        self._by_conversation[conversation_id] = session
        return previous if previous is not session else None

    def claimed_elsewhere(self, conversation_id: str, number: int) -> None:
        """Another node's socket took the conversation with claim *number*: replace ours
        (4409) if it holds a lower number."""
        holder = self._by_conversation.get(conversation_id)
        if holder is None:
            return
        self._remote_claims[conversation_id] = max(
            number, self._remote_claims.get(conversation_id, 0)
        )
        if 0 < holder.claim_number < number:
            holder.close_soon(REPLACED)

    def claimed_here(self, conversation_id: str, session: Closable) -> None:
        """*session* now has its claim number: is a newer one elsewhere already?"""
        if self._remote_claims.get(conversation_id, 0) > session.claim_number > 0:
            session.close_soon(REPLACED)

    async def close_all(self, code: int = 1001, *, within: float = 5.0) -> None:
        """Close every socket with *code* (1001 on shutdown) and wait, up to *within* s."""
        sessions = list(self._open)
        for session in sessions:
            session.close_soon(code)
        with anyio.move_on_after(within):
            for session in sessions:
                await session.wait_closed()

    def statistics(self) -> dict[str, int]:
        return {"open_sockets": len(self._open)}

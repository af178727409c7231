"""Signed checkpoints of the audit chain on a schedule (:mod:`audit.checkpoints`).

With ``SWITCHBOARD_AUDIT_CHECKPOINT_EVERY_SECONDS`` set, the node signs the chain's
head with the key at ``SWITCHBOARD_AUDIT_SIGNING_KEY`` (a file, never the database) and
keeps it at ``SWITCHBOARD_AUDIT_CHECKPOINTS`` (a directory, or a file to append to)
once at start, then each period in which the head moved, and once more when the node
stops. On many nodes each may take them; checkpoints of the same head agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import AuditBackend, AuditError
from audit.checkpoints import Checkpoint, sign_head, write_checkpoint

log = logging.getLogger(__name__)

# The last checkpoint, when the node stops, may take this long.
FINAL_CHECKPOINT_DEADLINE_S = 5.0


@dataclass
class Checkpointer:
    """Takes a checkpoint of *backend*'s head every *every* seconds it moved."""

    backend: AuditBackend
    key: Ed25519PrivateKey
    target: Path
    every: float
    taken: int = 0
    _last_seq: int | None = None

    def take(self) -> Checkpoint | None:
        """Sign and keep the head now unless it was the last one kept (blocking).

        Raises :class:`~audit.AuditError` if the trail cannot be read and ``OSError``
        if the checkpoint cannot be written.
        """
        head = self.backend.head()
        seq = 0 if head is None else head.seq
        if seq == self._last_seq:
            return None
        checkpoint = sign_head(self.key, head, datetime.now(UTC))
        write_checkpoint(checkpoint, self.target)
        self._last_seq = seq
        self.taken += 1
        log.info("audit checkpoint", extra={"seq": seq})
        return checkpoint

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Take checkpoints until cancelled, then one last (shielded, bounded)."""
        await self._take_logged()
        task_status.started()
        try:
            while True:
                await anyio.sleep(self.every)
                await self._take_logged()
        finally:
            with anyio.move_on_after(FINAL_CHECKPOINT_DEADLINE_S, shield=True):
                await self._take_logged()

    async def _take_logged(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.take)
        except (AuditError, OSError) as exc:
            # The trail goes on; the gap since the last checkpoint grows, and says so.
            log.warning("audit checkpoint failed", extra={"error": type(exc).__name__})

"""Workspaces as applied from their files: the spec, its revision, its agents and patients.

:meth:`WorkspaceStore.apply` writes a workspace in one transaction — the spec, the
agent definitions, and (for an inline directory) the patients — so a reader sees the
old workspace or the new one, never a mix. Applying the same content again changes
nothing (the digest is compared first) and keeps the revision.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError

from agents.exceptions import Unavailable
from agents.models import AgentDefinition, Patient, utcnow
from server.storage.engine import begin_write
from server.storage.rows import agent_values, patient_values
from server.storage.sql_store import upsert
from server.storage.tables import AGENTS, PATIENTS, WORKSPACES

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class StoredWorkspace:
    """A workspace row: its spec as JSON, and the revision it is at."""

    id: str
    name: str
    revision: int
    digest: str
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`WorkspaceStore.apply` did: the revision now, and whether it changed."""

    revision: int
    changed: bool


class WorkspaceStore:
    """Reads and writes the ``workspaces`` table (and a workspace's agents and patients)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def apply(
        self,
        *,
        workspace_id: str,
        name: str,
        digest: str,
        spec: dict[str, Any],
        agents: Sequence[AgentDefinition],
        patients: Sequence[Patient] | None,
    ) -> Applied:
        """Store a workspace: its spec, its agents, and *patients* (by id; ``None``: none).

        Agents of the workspace that *agents* no longer names are removed; patients are
        only ever created or replaced, never removed. Raises
        :class:`~agents.exceptions.Unavailable` if the database refuses (then nothing
        was written).
        """
        return await self._run(
            self._apply_sync, workspace_id, name, digest, spec, list(agents), patients
        )

    async def get(self, workspace_id: str) -> StoredWorkspace | None:
        """The stored workspace, or ``None`` if none was applied with that id."""
        return await self._run(self._get_sync, workspace_id)

    async def revision(self, workspace_id: str) -> int | None:
        """The workspace's current revision (one indexed read), or ``None``."""
        return await self._run(self._revision_sync, workspace_id)

    async def revisions(self) -> dict[str, int]:
        """Every applied workspace's id and current revision (one small query)."""
        return await self._run(self._revisions_sync)

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        try:
            return await anyio.to_thread.run_sync(function, *args)
        except SQLAlchemyError as exc:
            raise Unavailable("store unavailable") from exc

    # -- worker-thread side -----------------------------------------------------------

    def _apply_sync(
        self,
        workspace_id: str,
        name: str,
        digest: str,
        spec: dict[str, Any],
        agents: list[AgentDefinition],
        patients: Sequence[Patient] | None,
    ) -> Applied:
        with begin_write(self._engine) as connection:
            current = connection.execute(
                select(WORKSPACES.c.revision, WORKSPACES.c.digest).where(
                    WORKSPACES.c.id == workspace_id
                )
            ).first()
            if current is not None and current.digest == digest:
                return Applied(current.revision, changed=False)
            revision = 1 if current is None else current.revision + 1
            upsert(
                connection,
                WORKSPACES,
                [
                    {
                        "id": workspace_id,
                        "name": name,
                        "revision": revision,
                        "digest": digest,
                        "spec": json.dumps(spec, sort_keys=True),
                        "applied_at": utcnow(),
                    }
                ],
            )
            connection.execute(
                delete(AGENTS).where(
                    AGENTS.c.workspace_id == workspace_id,
                    AGENTS.c.id.not_in([a.id for a in agents]),
                )
            )
            upsert(connection, AGENTS, [agent_values(a) for a in agents])
            if patients:
                # Created or replaced by id; a record the file no longer lists is left
                # alone: a directory is never emptied by an edit to a file.
                upsert(connection, PATIENTS, [patient_values(p) for p in patients])
            return Applied(revision, changed=True)

    def _get_sync(self, workspace_id: str) -> StoredWorkspace | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(WORKSPACES).where(WORKSPACES.c.id == workspace_id)
            ).first()
        if row is None:
            return None
        return StoredWorkspace(row.id, row.name, row.revision, row.digest, json.loads(row.spec))

    def _revision_sync(self, workspace_id: str) -> int | None:
        with self._engine.connect() as connection:
            revision = connection.execute(
                select(WORKSPACES.c.revision).where(WORKSPACES.c.id == workspace_id)
            ).scalar()
        return None if revision is None else int(revision)

    def _revisions_sync(self) -> dict[str, int]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(WORKSPACES.c.id, WORKSPACES.c.revision)).all()
        return {row.id: row.revision for row in rows}

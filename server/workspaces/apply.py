"""Applying a workspace file: validated first, then stored in one transaction."""

from __future__ import annotations

from pathlib import Path

from agents.workspace_file import WorkspaceSpec, load_workspace_file
from server.storage.workspaces import Applied, WorkspaceStore


async def apply_spec(store: WorkspaceStore, spec: WorkspaceSpec) -> Applied:
    """Store *spec*: its agents replace the workspace's, and an inline directory its patients.

    Idempotent: the same content again changes nothing and keeps the revision. Raises
    :class:`~agents.exceptions.Unavailable` if the database refuses (nothing written).
    """
    return await store.apply(
        workspace_id=spec.id,
        name=spec.name,
        digest=spec.digest,
        spec=spec.to_json(),
        agents=spec.agent_definitions(),
        patients=spec.patient_records() if spec.directory == "inline" else None,
    )


async def apply_file(store: WorkspaceStore, path: Path) -> tuple[WorkspaceSpec, Applied]:
    """Read, validate and store the workspace file at *path*.

    Raises :class:`~agents.exceptions.WorkspaceFileError` for a bad file, before
    anything is written.
    """
    spec = load_workspace_file(path)
    return spec, await apply_spec(store, spec)

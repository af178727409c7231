"""The node's view of its workspaces: each one's agents, tools and brains, kept current.

:class:`WorkspaceCatalog` is the :class:`~agents.ports.WorkspaceSource` the runtime
asks at every turn. It builds a workspace's kit from the spec last applied
(``switchboard workspace apply``) and caches it; each turn reads only the stored
revision (one indexed row), so a workspace applied again — from this node or another,
while conversations run — is picked up at their next turn, and rebuilt only then.

It owns what the kits share: one pooled :class:`httpx.AsyncClient` for every HTTP
tool, and one :class:`~server.workspaces.mcp_tools.McpConnection` per MCP server,
running in its own task group (started with ``await tg.start(catalog.run)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import anyio
import httpx
from anyio.abc import TaskGroup, TaskStatus

from agents.brains import Brain
from agents.models import AgentDefinition
from agents.ports import WorkspaceKit
from agents.tools import Tool, ToolBox
from agents.workspace_file import BrainSpec, McpServerSpec, ToolSpec, WorkspaceSpec, spec_from_json
from server.storage.workspaces import WorkspaceStore
from server.workspaces.http_tools import build_http_tool
from server.workspaces.mcp_tools import McpConnection

log = logging.getLogger(__name__)

NO_FILE_RECHECK_S = 5.0
"""How long "no file was applied for this workspace" is believed before asking again."""
CHECK_INTERVAL_S = 0.0
"""How stale a cached kit may be before the stored revision is read again: every turn
reads it, so that "applied" means "in effect from the next turn"."""
MCP_READY_S = 10.0
"""How long building a kit waits for an MCP server's first tool listing."""
HTTP_POOL = httpx.Limits(max_connections=100, max_keepalive_connections=20)

BrainFactory = Callable[[BrainSpec], Brain]


@dataclass
class _Cached:
    kit: WorkspaceKit
    revision: int
    checked_at: float
    mcp: dict[str, tuple[McpServerSpec, McpConnection, anyio.CancelScope]] = field(
        default_factory=dict
    )
    mcp_connects: int = 0


class WorkspaceCatalog:
    """Each workspace's current kit, built from its stored spec.

    *builtins* are the node's builtin tools (the demo's simulators, the records tool)
    that a file may name with ``kind = "builtin"``; *brains* the brains every workspace
    has (``rule``, and ``llm`` when configured); *brain_factory* builds a file's own
    ``[brains.NAME]``.
    """

    def __init__(
        self,
        store: WorkspaceStore,
        *,
        builtins: ToolBox,
        brains: Mapping[str, Brain],
        brain_factory: BrainFactory | None = None,
    ) -> None:
        self._store = store
        self._builtins = builtins
        self._brains = dict(brains)
        self._brain_factory = brain_factory
        self._cache: dict[str, _Cached] = {}
        self._unfiled: dict[str, float] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._http: httpx.AsyncClient | None = None
        self._tg: TaskGroup | None = None
        self._builds = 0

    def statistics(self) -> dict[str, int]:
        return {
            "workspaces_cached": len(self._cache),
            "mcp_connections": sum(len(c.mcp) for c in self._cache.values()),
        }

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hold the HTTP pool and the MCP connections until cancelled."""
        async with httpx.AsyncClient(limits=HTTP_POOL, follow_redirects=False) as http:
            self._http = http
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    task_status.started()
                    await anyio.sleep_forever()
            finally:
                self._tg = None
                self._http = None
                self._cache.clear()

    async def kit(self, workspace_id: str) -> WorkspaceKit | None:
        """The workspace's kit, rebuilt if it was applied again (or an MCP server came back).

        ``None`` for a workspace no file was applied for. Raises
        :class:`~agents.exceptions.Unavailable` if the store refuses.
        """
        cached = self._cache.get(workspace_id)
        if cached is not None and not self._stale(cached):
            return cached.kit
        unfiled = self._unfiled.get(workspace_id)
        if unfiled is not None and anyio.current_time() - unfiled < NO_FILE_RECHECK_S:
            return None  # a workspace seeded in code (the bench's): nothing to read per turn
        lock = self._locks.setdefault(workspace_id, anyio.Lock())
        async with lock:
            cached = self._cache.get(workspace_id)
            if cached is not None and not self._stale(cached):
                return cached.kit
            if cached is not None and cached.mcp_connects == self._connects(cached):
                revision = await self._store.revision(workspace_id)
                if revision == cached.revision:
                    cached.checked_at = anyio.current_time()
                    return cached.kit
            stored = await self._store.get(workspace_id)
            if stored is None:
                self._cache.pop(workspace_id, None)
                self._unfiled[workspace_id] = anyio.current_time()
                return None
            self._unfiled.pop(workspace_id, None)
            fresh = await self._build(spec_from_json(stored.spec), stored.revision, cached)
            self._cache[workspace_id] = fresh
            return fresh.kit

    def _stale(self, cached: _Cached) -> bool:
        return anyio.current_time() - cached.checked_at >= CHECK_INTERVAL_S

    @staticmethod
    def _connects(cached: _Cached) -> int:
        return sum(connection.connects for _, connection, _ in cached.mcp.values())

    async def _build(self, spec: WorkspaceSpec, revision: int, old: _Cached | None) -> _Cached:
        if self._tg is None or self._http is None:
            raise RuntimeError("the workspace catalog is not running")
        mcp = await self._connections(spec, {} if old is None else old.mcp)
        tools = [t for t in (self._tool(s, self._http) for s in spec.tools) if t is not None]
        for _, connection, _ in mcp.values():
            tools.extend(connection.tools)
        agents = tuple(spec.agent_definitions())
        wanted = {name for agent in agents for name in agent.tools if not name.endswith(".*")}
        brains = dict(self._brains)
        for brain in spec.brains:
            if self._brain_factory is None:
                continue
            try:
                brains[brain.name] = self._brain_factory(brain)
            except Exception as exc:
                # Its agents' turns fail plainly ("no brain"); the rest of the kit works.
                log.warning(
                    "workspace brain unusable",
                    extra={
                        "workspace_id": spec.id,
                        "brain": brain.name,
                        "error": type(exc).__name__,
                    },
                )
        # A new number for every build (a re-apply, an MCP server listing again), so
        # that conversations take the new kit; the stored revision is kept apart.
        self._builds += 1
        kit = WorkspaceKit(
            workspace_id=spec.id,
            revision=self._builds,
            agents=_expand_wildcards(agents, tools),
            toolbox=ToolBox(tools),
            brains=brains,
        )
        cached = _Cached(kit, revision, anyio.current_time(), mcp)
        cached.mcp_connects = self._connects(cached)
        missing = wanted - {t.name for t in tools}
        if missing:
            # An MCP server not listing yet, or one that dropped a tool: agents keep the
            # name and a call says the tool is missing, rather than the kit failing.
            log.warning(
                "workspace names tools it does not have",
                extra={"workspace_id": spec.id, "missing": len(missing)},
            )
        return cached

    def _tool(self, spec: ToolSpec, http: httpx.AsyncClient) -> Tool | None:
        if spec.kind == "http":
            return build_http_tool(spec, http)
        builtin = self._builtins.get(spec.name)
        if builtin is None:
            # A node built without the simulators (the bench's): the agents keep the
            # name, and a call says the tool is missing.
            return None
        return Tool(
            name=builtin.name,
            description=spec.description or builtin.description,
            expected_latency=(
                builtin.expected_latency if spec.expected_latency is None else spec.expected_latency
            ),
            run=builtin.run,
            cleanup=builtin.cleanup,
            parameters=builtin.parameters if spec.parameters is None else spec.parameters,
        )

    async def _connections(
        self,
        spec: WorkspaceSpec,
        old: dict[str, tuple[McpServerSpec, McpConnection, anyio.CancelScope]],
    ) -> dict[str, tuple[McpServerSpec, McpConnection, anyio.CancelScope]]:
        assert self._tg is not None
        kept: dict[str, tuple[McpServerSpec, McpConnection, anyio.CancelScope]] = {}
        for server in spec.mcp_servers:
            previous = old.get(server.name)
            if previous is not None and previous[0] == server:
                kept[server.name] = previous
                continue
            connection = McpConnection(server)
            scope = anyio.CancelScope()
            await self._tg.start(_run_in_scope, connection, scope)
            kept[server.name] = (server, connection, scope)
        for name, (_, _, scope) in old.items():
            if kept.get(name, (None, None, None))[2] is not scope:
                scope.cancel()  # a server the file no longer names, or names differently
        for _, connection, _ in kept.values():
            if not connection.tools and not await connection.wait_ready(MCP_READY_S):
                log.warning(
                    "mcp server not ready",
                    extra={"workspace_id": spec.id, "mcp_server": connection.spec.name},
                )
        return kept


async def _run_in_scope(
    connection: McpConnection,
    scope: anyio.CancelScope,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        await connection.run(task_status=task_status)


def _expand_wildcards(
    agents: tuple[AgentDefinition, ...], tools: list[Tool]
) -> tuple[AgentDefinition, ...]:
    """``files.*`` in an agent's tools becomes every tool the ``files`` server lists."""
    names = [t.name for t in tools]
    expanded = []
    for agent in agents:
        own: list[str] = []
        for name in agent.tools:
            if name.endswith(".*"):
                own.extend(n for n in names if n.startswith(name[:-1]) and n not in own)
            elif name not in own:
                own.append(name)
        expanded.append(replace(agent, tools=tuple(own)))
    return tuple(expanded)

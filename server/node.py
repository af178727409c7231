"""One server process: the store, the bus, the audit trail and the runtime, wired.

:func:`start_node` is entered by the ASGI lifespan. It opens the node task group that
every conversation lives in, marks tasks a crashed process left running
``interrupted``, and on the way out closes every socket with 1001 and lets running
tasks clean up and store ``interrupted`` before the store is closed.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from agents.brains import Brain
from agents.brains.rule import RuleBrain
from agents.conversation import Services
from agents.demo.file import demo_spec
from agents.demo.workspace import build_demo_tools
from agents.exceptions import SwitchboardError
from agents.host import ConversationHost
from agents.memory import MemoryBus, MemoryLeases
from agents.models import AgentDefinition, Patient, StreamEvent, new_id
from agents.ports import Leases, PatientDirectory
from agents.tools import ToolBox
from agents.workspace_file import WorkspaceSpec
from audit import AuditTrail
from audit.checkpoints import load_private_key
from server.audit_checkpoints import Checkpointer
from server.audit_sink import TrailAuditSink
from server.audit_store import SqlAuditBackend
from server.audit_store import create_schema as create_audit_schema
from server.bus import RedisBus
from server.collector import CycleCollector
from server.leases import RedisLeases
from server.llm import brain_factory, environment_brain, on_brain
from server.metrics import NodeMetrics
from server.relay import RedisRelay
from server.serving import WAITING_SHARE, connection_limits
from server.sessions import SessionRegistry
from server.settings import Settings
from server.slow_clients import WaitingForHeads, http_statistics
from server.storage.engine import create_engine_for
from server.storage.sql_store import SqlStore
from server.storage.workspaces import WorkspaceStore
from server.workspaces.apply import apply_spec
from server.workspaces.catalog import WorkspaceCatalog

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Node:
    """Everything a request handler needs, reachable as ``request.app.state.node``."""

    settings: Settings
    store: SqlStore
    bus: MemoryBus
    trail: AuditTrail
    audit: TrailAuditSink
    host: ConversationHost
    sessions: SessionRegistry = field(default_factory=SessionRegistry)
    started: bool = False
    relay: RedisRelay | None = None
    metrics: NodeMetrics = field(default_factory=lambda: NodeMetrics(dict))
    awaiting_hello: WaitingForHeads = field(init=False)
    collector: CycleCollector | None = None
    """The process's cycle-collector schedule, once the app has installed it."""
    """Sockets accepted and not yet greeted (server.sockets caps how many)."""

    def __post_init__(self) -> None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if open_files == resource.RLIM_INFINITY:
            open_files = self.settings.max_waiting_requests * WAITING_SHARE
        cap = connection_limits(self.settings, open_files).max_waiting
        self.awaiting_hello = WaitingForHeads(cap)

    def statistics(self) -> dict[str, int]:
        return {
            **self.host.statistics(),
            **self.sessions.statistics(),
            **(self.bus.statistics() if isinstance(self.bus, RedisBus) else {}),
            **(self.relay.statistics() if self.relay is not None else {}),
            "takeovers": self.host.takeovers,
            "interrupted_on_takeover": self.host.interrupted,
            "events_published": self.bus.published,
            "audit_written": self.audit.written,
            "audit_failed": self.audit.failed,
            **{f"http_{key}": n for key, n in http_statistics().items()},
            **(self.collector.statistics() if self.collector is not None else {}),
            **{
                f"hello_{key}": n
                for key, n in self.awaiting_hello.statistics().items()
                if key != "cap"
            },
        }


@dataclass(frozen=True)
class Workspaces:
    """What a node serves: its builtin tools and brains, and what it applies in demo mode.

    ``tools`` are the builtin tools a workspace file may name (``kind = "builtin"``)
    and ``brains`` the brains every workspace has; both are built once the store
    exists, since they read it (the records tool, the rule brain). In demo mode the
    node applies ``files`` (workspace files, as ``switchboard workspace apply`` would)
    and seeds ``agents`` and ``patients`` (workspaces made in code, such as the
    bench's). :func:`demo_workspaces` is the default.
    """

    tools: Callable[[PatientDirectory, Settings], ToolBox]
    brains: Callable[[PatientDirectory], Mapping[str, Brain]]
    files: Sequence[WorkspaceSpec] = ()
    agents: Sequence[AgentDefinition] = ()
    patients: Sequence[Patient] = ()


def demo_workspaces() -> Workspaces:
    """The demo workspace (its file), with the builtin simulators and the rule brain."""
    return Workspaces(
        files=(demo_spec(),),
        tools=lambda directory, settings: build_demo_tools(
            directory, latency_scale=settings.tool_latency_scale
        ),
        brains=lambda directory: {"rule": RuleBrain(directory)},
    )


@asynccontextmanager
async def start_node(
    settings: Settings, workspaces: Workspaces | None = None
) -> AsyncIterator[Node]:
    """Open the node: schema, workspaces, recovery; close it gracefully on exit.

    The workspaces of *workspaces* (the demo's by default) are applied in demo mode; a
    production node serves the workspaces applied to its store with ``switchboard
    workspace apply``, and picks up a workspace applied again at each conversation's
    next turn.
    """
    workspaces = workspaces or demo_workspaces()
    # One name for this process in its leases, on its relay channel and on its database
    # sessions: a node restarted with the same id is not taken for its former self.
    owner = f"{settings.node_id}/{new_id('run')}"
    engine = create_engine_for(settings.database_url, application_name=owner)
    store = SqlStore(engine)
    await store.create_schema()
    await anyio.to_thread.run_sync(create_audit_schema, engine)
    workspace_store = WorkspaceStore(engine)
    llm = environment_brain(settings, store)
    if settings.demo_mode:
        for spec in workspaces.files:
            await apply_spec(workspace_store, spec if llm is None else on_brain(spec, "llm"))
        await store.save_agents(workspaces.agents)
        await store.save_patients(workspaces.patients)
    audit_backend = SqlAuditBackend(engine)
    trail = AuditTrail(audit_backend, node_id=settings.node_id)
    checkpointer = _checkpointer(settings, audit_backend)
    audit = TrailAuditSink(trail)
    bus = (
        MemoryBus()
        if settings.redis_url is None
        else RedisBus(settings.redis_url, settings.node_id, catch_up=_newest_of(store))
    )
    builtins = workspaces.tools(store, settings)
    brains = dict(workspaces.brains(store))
    if llm is not None:
        brains["llm"] = llm
    catalog = WorkspaceCatalog(
        workspace_store, builtins=builtins, brains=brains, brain_factory=brain_factory(store)
    )
    # Read when scraped: the node's counts, once the node exists.
    metrics = NodeMetrics(lambda: node.statistics(), store.engine)
    services = Services(
        store=store,
        publisher=bus,
        audit=audit,
        toolbox=builtins,
        brains=brains,
        settings=settings.runtime(),
        workspaces=catalog,
        observer=metrics,
        directory=store,
    )
    leases: Leases
    relay: RedisRelay | None = None
    if isinstance(bus, RedisBus):
        leases = RedisLeases(bus.client, owner, ttl=settings.lease_seconds)
        relay = RedisRelay(bus, owner)
    else:
        leases = MemoryLeases(settings.node_id, ttl=settings.lease_seconds)
    host = ConversationHost(services, leases, relay)
    node = Node(settings, store, bus, trail, audit, host, relay=relay, metrics=metrics)
    if relay is not None:
        relay.handler = host.run_relayed
        relay.on_claim = node.sessions.claimed_elsewhere
    try:
        async with anyio.create_task_group() as tg:
            # The store's one writer outlives the host, whose stopping tasks still commit.
            await tg.start(store.run)
            # The audit trail's one writer, likewise.
            await tg.start(audit.run)
            if checkpointer is not None:
                # Cancelled with the group, after the host: its last checkpoint covers
                # what the stopping tasks recorded.
                await tg.start(checkpointer.run)
            if relay is not None:
                await tg.start(relay.run)
            if isinstance(bus, RedisBus):
                await tg.start(bus.run)
            # The HTTP pool and the MCP sessions outlive the host's last clean-up.
            await tg.start(catalog.run)
            await tg.start(host.run)
            # Only conversations whose home is gone (lease lapsed) are touched; those
            # whose lease has yet to lapse are taken by the host's periodic sweep.
            try:
                interrupted = await host.recover()
            except SwitchboardError as exc:
                interrupted = 0
                log.warning("recovery deferred", extra={"error": exc.code})
            if interrupted:
                log.info("recovered after an unclean stop", extra={"interrupted": interrupted})
            node.started = True
            try:
                yield node
            finally:
                node.started = False
                with anyio.CancelScope(shield=True):
                    await node.sessions.close_all()
                # Cancelling the host lets every task run its clean-up (shielded, under
                # the clean-up deadline) and store `interrupted`; the group waits.
                host.stop()
                # The bus relay has nothing left to relay once the host has stopped.
                tg.start_soon(_cancel_after_host, tg, host)
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()


def _checkpointer(settings: Settings, backend: SqlAuditBackend) -> Checkpointer | None:
    """The scheduled audit checkpoints, if configured; raises
    :class:`~audit.checkpoints.InvalidCheckpoint` if the key cannot be read."""
    if settings.audit_checkpoint_every is None:
        return None
    # Settings.from_env refuses a schedule without both.
    assert settings.audit_signing_key is not None
    assert settings.audit_checkpoints is not None
    return Checkpointer(
        backend,
        load_private_key(settings.audit_signing_key),
        settings.audit_checkpoints,
        settings.audit_checkpoint_every,
    )


def _newest_of(store: SqlStore) -> Callable[[Sequence[str]], Awaitable[list[StreamEvent]]]:
    """The bus's catch-up after Redis was away: each watched chat's newest stored event."""

    async def newest(chat_ids: Sequence[str]) -> list[StreamEvent]:
        found: list[StreamEvent] = []
        for chat_id in chat_ids:
            last = await store.last_seq(chat_id)
            if last:
                found.extend(await store.events_after(chat_id, last - 1, 1))
        return found

    return newest


async def _cancel_after_host(tg: anyio.abc.TaskGroup, host: ConversationHost) -> None:
    await host.wait_stopped()
    tg.cancel_scope.cancel()

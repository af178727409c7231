"""The server the benchmarks drive: ``switchboard serve`` with the bench workspace.

``python -m bench.server --port P`` is :func:`server.app.create_app`'s app — its
routes, middleware and exception handlers — on uvicorn with the options of
``switchboard serve``, behind the same access-log middleware. Two things differ: the
lifespan starts a node whose workspace (agents, brain, tools) is the bench's
(:mod:`bench.workspace`), and one route is added, ``/bench/echo``, a bare Starlette
WebSocket echo that P4 measures the whole stack against.

:func:`server.node.start_node` takes only the settings and always wires the demo's
brain, tools and agents, so :func:`start_bench_node` repeats its wiring with the
bench's instead (and must be kept in step with it).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agents.conversation import Services
from agents.host import ConversationHost
from agents.memory import MemoryBus
from audit import AuditTrail
from bench.workspace import BRAIN, BenchBrain, bench_agents, build_bench_tools
from server.app import create_app
from server.audit_sink import TrailAuditSink
from server.audit_store import SqlAuditBackend
from server.audit_store import create_schema as create_audit_schema
from server.cli import GRACEFUL_SHUTDOWN_S, SwitchboardServer
from server.logs import AccessLogMiddleware, configure_logging
from server.node import Node
from server.settings import Settings
from server.storage.engine import create_engine_for
from server.storage.sql_store import SqlStore

log = logging.getLogger("bench.server")

ECHO_PATH = "/bench/echo"
MEMORY_PATH = "/bench/memory"


@asynccontextmanager
async def start_bench_node(settings: Settings) -> AsyncIterator[Node]:
    """:func:`server.node.start_node`, with the bench workspace instead of the demo's."""
    engine = create_engine_for(settings.database_url)
    store = SqlStore(engine)
    await store.create_schema()
    await anyio.to_thread.run_sync(create_audit_schema, engine)
    await store.save_agents(bench_agents())
    trail = AuditTrail(SqlAuditBackend(engine), node_id=settings.node_id)
    audit = TrailAuditSink(trail)
    bus = MemoryBus()
    services = Services(
        store=store,
        publisher=bus,
        audit=audit,
        toolbox=build_bench_tools(),
        brains={BRAIN: BenchBrain()},
        settings=settings.runtime(),
    )
    host = ConversationHost(services)
    node = Node(settings, store, bus, trail, audit, host)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(host.run)
            await host.recover()
            node.started = True
            try:
                yield node
            finally:
                node.started = False
                with anyio.CancelScope(shield=True):
                    await node.sessions.close_all()
                host.stop()
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()


async def echo_endpoint(websocket: WebSocket) -> None:
    """Send every text frame back as it came: the floor for P4."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


def create_bench_app(settings: Settings) -> Starlette:
    """:func:`server.app.create_app` with the bench node and the echo route.

    The app is the server's own — its routes, middleware and exception handlers — with
    the lifespan swapped for one that starts the bench node, and one route added.
    """
    app = create_app(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with start_bench_node(settings) as node:
            app.state.node = node
            yield

    app.router.lifespan_context = lifespan
    app.router.routes.append(WebSocketRoute(ECHO_PATH, echo_endpoint))
    frames = os.environ.get("BENCH_TRACE_MEMORY")
    if frames:
        # A diagnostic, never on in a measured run: see bench/memtrace.py.
        from bench.memtrace import MemoryTrace

        app.router.routes.append(
            Route(MEMORY_PATH, MemoryTrace(int(frames)).report, methods=["GET"])
        )
    return app


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level.upper())
    raise_fd_limit()
    settings = Settings.from_env()
    app = create_bench_app(settings)
    # The options of `switchboard serve` (server/cli.py), minus the proxy headers.
    config = uvicorn.Config(
        AccessLogMiddleware(app),
        host=args.host,
        port=args.port,
        lifespan="on",
        ws_max_size=settings.max_frame_size,
        ws_per_message_deflate=False,
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    SwitchboardServer(config, app).run()


if __name__ == "__main__":
    main()

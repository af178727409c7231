"""The server the benchmarks drive: ``switchboard serve`` with the bench workspace.

``python -m bench.server --port P`` is :func:`server.app.create_app`'s app — its
routes, middleware, exception handlers and node — on uvicorn with the options of
``switchboard serve``, behind the same access-log middleware. Two things differ: the
node serves the bench's workspace (agents, brain, tools: :mod:`bench.workspace`)
instead of the demo's, and routes are added: ``/bench/echo``, a bare Starlette
WebSocket echo that P4 measures the whole stack against, and
``/bench/conversations/{id}``, what the live runtime of a conversation holds (P10).
Diagnostics that cost the server something are added only when asked for:
``/bench/memory`` and ``/bench/heap`` with ``BENCH_TRACE_MEMORY`` (:mod:`bench.memtrace`),
``/bench/gc`` with ``BENCH_GC`` (:mod:`bench.gctrace`), ``/bench/sample`` with
``BENCH_SAMPLE`` (:mod:`bench.sampler`, for ``--profile``).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agents.brains import Brain
from agents.brains.llm import LLMBrain
from agents.brains.llm.client import ChatClient, ChatModel
from agents.ports import PatientDirectory
from bench.workspace import BRAIN, BenchBrain, bench_agents, build_bench_tools
from server.app import create_app
from server.cli import SwitchboardServer
from server.logs import AccessLogMiddleware, configure_logging
from server.node import Workspaces
from server.serving import raise_open_files_limit, uvicorn_config
from server.settings import Settings

log = logging.getLogger("bench.server")

ECHO_PATH = "/bench/echo"
MEMORY_PATH = "/bench/memory"
HEAP_PATH = "/bench/heap"
CONVERSATION_PATH = "/bench/conversations/{conversation_id}"


def bench_workspaces() -> Workspaces:
    """The bench's workspace, served by an otherwise unchanged node.

    With ``BENCH_LLM_URL`` its agents think with the LLM brain on that model server
    instead (P13), everything else unchanged.
    """
    model_url = os.environ.get("BENCH_LLM_URL")

    def brains(directory: PatientDirectory) -> dict[str, Brain]:
        if model_url:
            client = ChatClient(ChatModel(model_url, "bench", timeout=10.0, deadline=20.0))
            return {BRAIN: LLMBrain(client, directory)}
        return {BRAIN: BenchBrain()}

    return Workspaces(
        agents=bench_agents(),
        patients=(),
        tools=lambda _directory, _settings: build_bench_tools(),
        brains=brains,
    )


async def echo_endpoint(websocket: WebSocket) -> None:
    """Send every text frame back as it came: the floor for P4."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


async def conversation_endpoint(request: Request) -> Response:
    """What the conversation's live runtime holds (its ``statistics()``); 404 if none.

    Read-only, and unauthenticated: the bench server listens on loopback only.
    """
    runtime = request.app.state.node.host.live(request.path_params["conversation_id"])
    if runtime is None:
        return JSONResponse({"live": False}, status_code=404)
    return JSONResponse({"live": True, **runtime.statistics()})


def create_bench_app(settings: Settings) -> Starlette:
    """:func:`server.app.create_app` serving the bench's workspace, plus the bench's routes."""
    app = create_app(settings, bench_workspaces())
    routes = app.router.routes
    routes.append(WebSocketRoute(ECHO_PATH, echo_endpoint))
    routes.append(Route(CONVERSATION_PATH, conversation_endpoint, methods=["GET"]))
    frames = os.environ.get("BENCH_TRACE_MEMORY")
    if frames:
        # Slows the server and adds memory of its own: only P10 and diagnostics use it.
        from bench.memtrace import MemoryTrace

        trace = MemoryTrace(int(frames))
        routes.append(Route(MEMORY_PATH, trace.report, methods=["GET"]))
        routes.append(Route(HEAP_PATH, trace.heap, methods=["GET"]))
    sample = os.environ.get("BENCH_SAMPLE")
    if sample:
        from pathlib import Path

        from bench.sampler import SAMPLE_PATH, Sampler

        sampler = Sampler(Path(sample))
        routes.append(Route(SAMPLE_PATH, sampler.endpoint, methods=["POST", "DELETE"]))
    if os.environ.get("BENCH_GC"):
        from bench.gctrace import COLLECT_PATH, GC_PATH, WALK_PATH, CollectorWatch

        watch = CollectorWatch()
        watch.install()
        routes.append(Route(GC_PATH, watch.report, methods=["GET"]))
        routes.append(Route(COLLECT_PATH, watch.collect, methods=["POST"]))
        routes.append(Route(WALK_PATH, watch.walk, methods=["POST"]))
    return app


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit."""
    return raise_open_files_limit()[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level.upper())
    settings = Settings.from_env()
    app = create_bench_app(settings)
    # The options of `switchboard serve` (server/cli.py), minus the proxy headers.
    config = uvicorn_config(AccessLogMiddleware(app), settings, host=args.host, port=args.port)
    SwitchboardServer(config, app).run()


if __name__ == "__main__":
    main()

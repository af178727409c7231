"""The ASGI application: HTTP API, the two sockets, the pages, and the node's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from server.collector import CycleCollector
from server.http_api import routes as http_routes
from server.http_errors import http_exception_handler
from server.node import Node, Workspaces, start_node
from server.pages import page_routes
from server.settings import Settings
from server.sockets import socket_routes


@contextmanager
def _loop_library_named() -> Iterator[None]:
    """While the app runs, this thread's event loop library is named once, for sniffio.

    anyio asks which library runs at each of its calls (an event, a lock, the time);
    where sniffio is installed (Trio needs it) it answers that, and it finds asyncio by
    asking for the current task, about half a microsecond every time, dozens of times
    a ``say``. Named for the thread (``sniffio.thread_local``), the answer is a read.
    """
    try:
        import sniffio
    except ImportError:  # anyio then asks asyncio for the running loop: quick already
        yield
        return
    previous = sniffio.thread_local.name
    sniffio.thread_local.name = sniffio.current_async_library()
    try:
        yield
    finally:
        sniffio.thread_local.name = previous


@asynccontextmanager
async def _collecting(node: Node, settings: Settings) -> AsyncIterator[None]:
    """The node's cycle-collector schedule (:mod:`server.collector`) while the app runs."""
    # What start-up made (modules, routes, the workspaces, the node) lives as long as
    # the process: frozen, as what each full collection leaves will be.
    collector = node.collector = CycleCollector(settings.gc_full_walk_every, settings.gc_thresholds)
    collector.install()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(collector.run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
    finally:
        collector.uninstall()


def create_app(settings: Settings | None = None, workspaces: Workspaces | None = None) -> Starlette:
    """Build the app; the node starts with the lifespan and is ``app.state.node``.

    *workspaces* are what the node serves (:func:`server.node.demo_workspaces` by
    default).
    """
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with _loop_library_named():
            async with start_node(settings, workspaces) as node:
                app.state.node = node
                async with _collecting(node, settings):
                    yield

    routes: list[BaseRoute] = [*http_routes(), *socket_routes(), *page_routes()]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception_handler},
        # A host page on another allowed origin embeds the widget, which calls the API
        # with a bearer token (no cookies): the same origins the sockets accept.
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        ],
    )
    app.state.settings = settings
    return app

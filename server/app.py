"""The ASGI application: HTTP API, the two sockets, the pages, and the node's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from server.collector import CycleCollector
from server.http_api import routes as http_routes
from server.http_errors import http_exception_handler
from server.node import Workspaces, start_node
from server.pages import page_routes
from server.settings import Settings
from server.sockets import socket_routes


def create_app(settings: Settings | None = None, workspaces: Workspaces | None = None) -> Starlette:
    """Build the app; the node starts with the lifespan and is ``app.state.node``.

    *workspaces* are what the node serves (:func:`server.node.demo_workspaces` by
    default).
    """
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with start_node(settings, workspaces) as node:
            app.state.node = node
            # What start-up made (modules, routes, the workspaces, the node) lives as
            # long as the process: frozen, as what each full collection leaves will be.
            collector = node.collector = CycleCollector(settings.gc_full_walk_every)
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

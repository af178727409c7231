"""The browser faces: the demo page, the Chats view, a sub-agent's chat, their assets.

The pages are static files from the repository's ``static/`` directory; everything
they show comes over the API with the person's token, which the pages keep in web
storage and never put in a URL. In demo mode ``POST /demo/token`` gives a browser a
person of the ``demo`` workspace; outside demo mode that route does not exist (404).

Every page is sent with a Content-Security-Policy that allows nothing but this origin:
no inline script or style, no fetch to anywhere else.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from server.auth import issue_token
from server.http_errors import NO_STORE, error_response
from server.protocol import ErrorCode

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
"""The browser clients, next to the ``server`` package in the repository."""

DEMO_WORKSPACE = "demo"
DEMO_TOKEN_TTL_S = 12 * 3600
# A demo sub is minted here, so it is unguessable; a browser may only ask again for one
# of that shape, never for an arbitrary principal such as another workspace's "pat".
_DEMO_SUB = re.compile(r"demo-[A-Za-z0-9_\-]{16,64}")
_MAX_BODY_BYTES = 4096
_MAX_NAME_CHARS = 80

# 'self' covers same-origin ws:/wss: in CSP Level 3, which is what the pages connect to.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    # Pages are tiny and change with deploys: always revalidate.
    "cache-control": "no-cache",
}


class _Assets(StaticFiles):
    """The static directory, readable by host pages on other origins (the widget)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        # Module scripts from another origin need CORS; these files hold no secrets and
        # are fetched without credentials, so any origin may read them.
        response.headers["access-control-allow-origin"] = "*"
        response.headers["x-content-type-options"] = "nosniff"
        response.headers.setdefault("cache-control", "no-cache")
        return response


def _page(name: str) -> Response:
    path = STATIC_DIR / name
    if not path.is_file():
        return error_response(ErrorCode.NOT_FOUND)
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def demo_page(request: Request) -> Response:
    """``GET /``: the demo, with the widget embedded."""
    return _page("index.html")


async def chats_page(request: Request) -> Response:
    """``GET /chats``: the Chats view."""
    return _page("chats.html")


async def chat_page(request: Request) -> Response:
    """``GET /chats/{chat_id}``: one chat, watched live; the script reads the id."""
    return _page("chat.html")


async def demo_token(request: Request) -> Response:
    """``POST /demo/token``: a person's token in the demo workspace (demo mode only).

    Body ``{"sub": optional, "name": optional}``; answers ``{"token", "sub",
    "workspace"}``. A new browser gets a new random sub; giving back the sub it got
    keeps it the same person across reloads.
    """
    settings = request.app.state.settings
    if not settings.demo_mode:
        return error_response(ErrorCode.NOT_FOUND)
    body = await _small_json(request)
    if body is None:
        return error_response(ErrorCode.BAD_FRAME)
    sub = body.get("sub")
    name = body.get("name")
    if sub is None:
        sub = f"demo-{secrets.token_urlsafe(16)}"
    elif not isinstance(sub, str) or not _DEMO_SUB.fullmatch(sub):
        return error_response(ErrorCode.BAD_FRAME)
    if name is not None and (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > _MAX_NAME_CHARS
        or not name.isprintable()
    ):
        return error_response(ErrorCode.BAD_FRAME)
    token = issue_token(
        settings.secret,
        workspace=DEMO_WORKSPACE,
        sub=sub,
        role="person",
        name=name,
        ttl=DEMO_TOKEN_TTL_S,
    )
    return JSONResponse({"token": token, "sub": sub, "workspace": DEMO_WORKSPACE}, headers=NO_STORE)


async def _small_json(request: Request) -> dict[str, object] | None:
    """The body as a JSON object (empty is ``{}``), or ``None`` if it is not one."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY_BYTES:
            return None
    if not body.strip():
        return {}
    try:
        data = json.loads(bytes(body).decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def page_routes() -> list[BaseRoute]:
    """The pages, ``/static``, and the demo token endpoint."""
    return [
        Route("/", demo_page, methods=["GET", "HEAD"]),
        Route("/chats", chats_page, methods=["GET", "HEAD"]),
        Route("/chats/{chat_id}", chat_page, methods=["GET", "HEAD"]),
        Route("/demo/token", demo_token, methods=["POST"]),
        Mount("/static", app=_Assets(directory=STATIC_DIR, check_dir=False), name="static"),
    ]

"""The tools a test workspace uses: a real HTTP endpoint and a real MCP server.

Run as a process, the way a workspace's own services would run beside Switchboard::

    python -m tests.tool_servers http --port P     # the insurer's eligibility API
    python -m tests.tool_servers mcp               # a document store, MCP over stdio
    python -m tests.tool_servers mcp-http --port P # the same, MCP over streamable HTTP

The HTTP endpoint keeps what it was asked (``GET /calls``) so that tests can see the
arguments and headers a tool call carried, and which clean-ups ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from contextlib import AbstractContextManager
from typing import Any

from tests.processes import serving

ELIGIBILITY_TOKEN = "test-eligibility-token-7f3a"
"""The bearer token the endpoint wants; tests put it in the environment, never a file."""

DOCUMENTS = {
    "maria lopez": {"intake": "Intake form signed 2026-11-02; allergies: penicillin."},
    "tom baker": {"intake": "Intake form missing the insurance page."},
}


def http_app() -> Any:
    """The eligibility API: Starlette, served by uvicorn like any real endpoint."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    calls: list[dict[str, Any]] = []

    async def record(request: Request) -> dict[str, Any]:
        body = await request.body()
        call = {
            "path": request.url.path,
            "method": request.method,
            "query": dict(request.query_params),
            "json": json.loads(body) if body else None,
            "authorization": request.headers.get("authorization"),
            "task": request.headers.get("x-switchboard-task"),
        }
        calls.append(call)
        return call

    async def eligibility(request: Request) -> Response:
        call = await record(request)
        if call["authorization"] != f"Bearer {ELIGIBILITY_TOKEN}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        member = (call["json"] or {}).get("patient") or "the member"
        return JSONResponse(
            {
                "text": f"{member} is covered by Acme Health; the plan is active until 2027-12-31.",
                "covered": True,
                "left_open": bool((call["json"] or {}).get("hold")),
            }
        )

    async def slow(request: Request) -> Response:
        await record(request)
        await asyncio.sleep(30)
        return JSONResponse({"text": "too late"})

    async def broken(request: Request) -> Response:
        await record(request)
        return JSONResponse({"error": "the insurer's system is down"}, status_code=503)

    async def not_json(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("<html>maintenance</html>")

    async def release(request: Request) -> Response:
        await record(request)
        return JSONResponse({"text": "Released the eligibility hold."})

    async def calls_made(request: Request) -> Response:
        return JSONResponse(calls)

    return Starlette(
        routes=[
            Route("/eligibility", eligibility, methods=["POST", "GET"]),
            Route("/slow", slow, methods=["POST"]),
            Route("/broken", broken, methods=["POST"]),
            Route("/not-json", not_json, methods=["POST"]),
            Route("/release", release, methods=["POST"]),
            Route("/calls", calls_made, methods=["GET"]),
        ]
    )


def mcp_server() -> Any:
    """The document store: an MCP server with one tool, from the official SDK."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("documents")

    @server.tool()
    def find_document(patient: str, kind: str = "intake") -> str:
        """Find a patient's document (an intake form, a referral) and summarise it."""
        found = DOCUMENTS.get(patient.strip().lower(), {}).get(kind)
        if found is None:
            return f"No {kind} document on file for {patient}."
        return f"{patient}: {found}"

    return server


def running(kind: str) -> AbstractContextManager[str]:
    """Run ``http`` or ``mcp-http`` in a process on a free port; yields its base URL."""
    ready = "/calls" if kind == "http" else "/mcp"
    return serving("tests.tool_servers", kind, ready=ready, what=f"the {kind} tool server")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["http", "mcp", "mcp-http"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.kind == "mcp":
        mcp_server().run("stdio")
    elif args.kind == "mcp-http":
        mcp_server().run("streamable-http", host="127.0.0.1", port=args.port)
    else:
        import uvicorn

        uvicorn.run(http_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

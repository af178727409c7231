"""MCP servers: a workspace's tools served over the Model Context Protocol.

One :class:`McpConnection` per declared server lives in the catalog's task group: it
starts the server (stdio) or connects to it (streamable HTTP) with the official
``mcp`` SDK, lists its tools, and keeps the session for every call. Its tools become
the agents' tools as ``{server}.{tool}``, with the schemas the server declares.

If the server goes away, calls fail their step with a plain reason and the
connection starts again with backoff; nothing about it can stop the node.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import anyio
from anyio.abc import TaskStatus
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import TextContent

from agents.exceptions import ToolError
from agents.tools import Tool, ToolContext, ToolResult
from agents.workspace_file import McpServerSpec
from server.workspaces.http_tools import MAX_TEXT, argument_checker

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


class McpConnection:
    """A live session with one MCP server; start it with ``await tg.start(conn.run)``."""

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self._client: Client | None = None
        self._tools: dict[str, Tool] = {}
        self._ready = anyio.Event()
        self._attempted = anyio.Event()
        self._broken = anyio.Event()
        self.connects = 0

    @property
    def tools(self) -> list[Tool]:
        """The server's tools as of its last listing (empty until it first answered)."""
        return list(self._tools.values())

    async def wait_ready(self, seconds: float) -> bool:
        """Wait up to *seconds* for the first listing; whether it came.

        Returns at once if the first attempt to connect has already failed: a turn
        never waits on a server that is down, it hears that the tool is unavailable.
        """
        with anyio.move_on_after(seconds):
            await self._attempted.wait()
        return self._ready.is_set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, list, serve calls; reconnect with backoff whenever the session ends."""
        task_status.started()
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                async with AsyncExitStack() as stack:
                    client = await stack.enter_async_context(await self._connect(stack))
                    listing = await client.list_tools()
                    self._tools = {
                        tool.name: self._tool(tool.name, tool.description, tool.input_schema)
                        for tool in listing.tools
                    }
                    self._client = client
                    self.connects += 1
                    self._broken = anyio.Event()
                    self._ready.set()
                    self._attempted.set()
                    backoff = BACKOFF_FIRST_S
                    log.info(
                        "mcp server connected",
                        extra={"mcp_server": self.spec.name, "tools": len(self._tools)},
                    )
                    await self._broken.wait()
            except Exception as exc:
                # The SDK raises whatever its transport met (a process that exited, a
                # refused connection, an ExceptionGroup from its task group): the type
                # is enough to tell, and the text may quote what the server sent.
                log.warning(
                    "mcp server unavailable",
                    extra={"mcp_server": self.spec.name, "error": type(exc).__name__},
                )
            finally:
                self._client = None
                self._attempted.set()
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _connect(self, stack: AsyncExitStack) -> Client:
        spec = self.spec
        if spec.url is not None:
            headers = {h: os.environ.get(v, "") for h, v in spec.headers_from_env.items()}
            # The SDK leaves a client it was given open: it closes after the session.
            http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
            transport = streamable_http_client(spec.url, http_client=http)
            return Client(transport, read_timeout_seconds=spec.timeout)
        env = {name: os.environ.get(variable, "") for name, variable in spec.env_from.items()}
        params = StdioServerParameters(
            command=spec.command[0], args=list(spec.command[1:]), env=env
        )
        return Client(params, read_timeout_seconds=spec.timeout)

    def _tool(self, name: str, description: str | None, schema: Mapping[str, Any]) -> Tool:
        full_name = f"{self.spec.name}.{name}"
        check = argument_checker(full_name, schema)

        async def run(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
            check(args)
            client = self._client
            if client is None:
                raise ToolError(f"{full_name} is unavailable right now.")
            ctx.report_progress(f"Asking {full_name}…")
            try:
                result = await client.call_tool(name, dict(args))
            except Exception as exc:
                log.warning(
                    "mcp call failed",
                    extra={"mcp_server": self.spec.name, "error": type(exc).__name__},
                )
                self._broken.set()
                raise ToolError(f"{full_name} could not be reached.") from None
            text = "\n".join(
                block.text for block in result.content if isinstance(block, TextContent)
            ).strip()
            if result.is_error:
                # The server's own words may quote the arguments: keep them out.
                raise ToolError(f"{full_name} reported an error.")
            data = result.structured_content
            if not isinstance(data, dict):
                data = {} if data is None else {"value": data}
            return ToolResult(text=(text or f"{full_name} is done.")[:MAX_TEXT], data=data)

        latency = self.spec.latency.get(name, self.spec.expected_latency)
        return Tool(
            name=full_name,
            description=description or name,
            expected_latency=latency,
            run=run,
            parameters=dict(schema),
        )

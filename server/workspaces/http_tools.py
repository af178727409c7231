"""HTTP tools: a workspace's own endpoints, called with pooled httpx connections.

The contract an endpoint keeps (``docs/WORKSPACES.md``): it receives the tool's
arguments — a JSON body for POST, PUT and PATCH, query parameters for GET and DELETE
— and answers a JSON object. Its ``text`` (a string) is what the agent reports; the
whole object is the result's data; ``"left_open": true`` says something is still
running that the clean-up endpoint should stop if the task is cancelled.

Every failure becomes a :class:`~agents.exceptions.ToolError` whose message names the
tool and what went wrong (a timeout, a status code, an answer that is not JSON) and
nothing else: not the URL, not the arguments, not the answer, not a header.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from agents.exceptions import ToolError
from agents.tools import Tool, ToolContext, ToolResult
from agents.workspace_file import Endpoint, ToolSpec

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1 << 20
"""An answer larger than this fails the step: a tool result is read whole."""
MAX_TEXT = 4000
"""The longest text an agent reports from one answer."""


def argument_checker(name: str, schema: Mapping[str, Any]) -> Any:
    """A function that raises :class:`ToolError` for arguments *schema* refuses.

    The message names the failing keyword and where, never the value (it may be PHI).
    """
    validator = Draft202012Validator(dict(schema))

    def check(args: Mapping[str, Any]) -> None:
        error = next(iter(validator.iter_errors(dict(args))), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the arguments"
            raise ToolError(
                f"{name} was given arguments its schema refuses ({error.validator} at {where})."
            )

    return check


def build_http_tool(spec: ToolSpec, client: httpx.AsyncClient) -> Tool:
    """The :class:`Tool` that calls *spec*'s endpoint through *client*."""
    # The file's reader requires all three of an HTTP tool.
    assert spec.endpoint is not None
    assert spec.expected_latency is not None
    assert spec.parameters is not None
    check = argument_checker(spec.name, spec.parameters)
    endpoint = spec.endpoint
    parameters = spec.parameters
    timeout = spec.timeout

    async def run(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        check(args)
        ctx.report_progress(f"Asking {spec.name}…")
        answer = await _call(spec.name, client, endpoint, args, ctx, deadline=timeout)
        text = answer.get("text")
        if not isinstance(text, str) or not text.strip():
            text = f"{spec.name} answered: {json.dumps(answer, sort_keys=True)}"
        return ToolResult(
            text=text.strip()[:MAX_TEXT], data=answer, left_open=answer.get("left_open") is True
        )

    cleanup = None
    if spec.cleanup is not None:
        cleanup_endpoint = spec.cleanup

        async def clean_up(ctx: ToolContext, args: Mapping[str, Any]) -> str | None:
            answer = await _call(spec.name, client, cleanup_endpoint, args, ctx, deadline=timeout)
            text = answer.get("text")
            return text.strip()[:MAX_TEXT] if isinstance(text, str) and text.strip() else None

        cleanup = clean_up

    return Tool(
        name=spec.name,
        description=spec.description,
        expected_latency=spec.expected_latency,
        run=run,
        cleanup=cleanup,
        parameters=parameters,
    )


async def _call(
    name: str,
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    args: Mapping[str, Any],
    ctx: ToolContext,
    *,
    deadline: float,
) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    for header, variable in endpoint.headers_from_env.items():
        value = os.environ.get(variable)
        if value is None:
            # The variable's name is configuration, not a secret; its value never shows.
            raise ToolError(f"{name} is not configured: ${variable} is not set.")
        headers[header] = value
    if ctx.task_id is not None:
        # Lets an endpoint recognise a retried call of the same task.
        headers["X-Switchboard-Task"] = ctx.task_id
    body = dict(args)
    try:
        if endpoint.method in ("GET", "DELETE"):
            response = await client.request(
                endpoint.method,
                endpoint.url,
                params=_query(body),
                headers=headers,
                timeout=deadline,
            )
        else:
            response = await client.request(
                endpoint.method, endpoint.url, json=body, headers=headers, timeout=deadline
            )
    except httpx.TimeoutException:
        raise ToolError(f"{name} did not answer within {deadline:g} s.") from None
    except httpx.HTTPError as exc:
        log.warning("http tool unreachable", extra={"tool": name, "error": type(exc).__name__})
        raise ToolError(f"{name} could not be reached.") from None
    if response.status_code >= 400:
        raise ToolError(f"{name} answered HTTP {response.status_code}.")
    if len(response.content) > MAX_ANSWER_BYTES:
        raise ToolError(f"{name} answered more than {MAX_ANSWER_BYTES // 1024} KiB.")
    try:
        answer = response.json()
    except ValueError:
        raise ToolError(f"{name} answered with something that is not JSON.") from None
    return answer if isinstance(answer, dict) else {"value": answer}


def _query(args: Mapping[str, Any]) -> dict[str, str]:
    # Scalars as themselves; anything else as JSON, so that nothing is silently dropped.
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in args.items()
    }

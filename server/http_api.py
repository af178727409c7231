"""The HTTP API of PROTOCOL.md: every endpoint of its table but the two sockets.

Each endpoint authenticates the bearer token, then reaches records only through
:class:`~agents.host.ConversationHost`, whose one ownership check and audit cover every
path. The channel given to the host is the route template (``http:GET
/v1/tasks/{task_id}``), never the concrete URL or its query string. Whatever the
caller may not see is ``404`` with the same body as an id that never existed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agents.exceptions import NotFound, Unavailable
from agents.models import Chat, ChatKind, Principal, Role, StreamEvent, Task, rfc3339
from agents.ports import AuditEntry, AuditOutcome, AuditReason, AuditType
from server.http_errors import (
    NO_STORE,
    authenticate,
    error_code_for,
    error_response,
)
from server.metrics import CONTENT_TYPE, render_node_metrics
from server.protocol import MAX_ID_CHARS, MAX_SEQ, MAX_TEXT_CHARS, ErrorCode

if TYPE_CHECKING:
    from server.node import Node

log = logging.getLogger(__name__)

DEFAULT_AFTER = 0
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Readiness answers within this even when the database hangs.
READY_TIMEOUT_S = 5.0

# The ids the server hands out (``new_id``); the audit trail accepts no others, so an id
# outside this alphabet cannot exist and is refused before it reaches the host.
_RECORD_ID = re.compile(r"[A-Za-z0-9_\-]{1,100}")
_DIGITS = re.compile(r"[0-9]{1,19}")

Handler = Callable[["ApiCall"], Awaitable[Response]]


class _Refused(Exception):
    """Internal: unwinds request validation to the endpoint wrapper with a code."""

    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.value)
        self.code = code


def _refuse(code: ErrorCode = ErrorCode.BAD_FRAME) -> NoReturn:
    raise _Refused(code)


class ApiCall:
    """One authenticated request: its node, principal and audit channel."""

    __slots__ = ("channel", "node", "principal", "request")

    def __init__(self, request: Request, node: Node, principal: Principal, channel: str) -> None:
        self.request = request
        self.node = node
        self.principal = principal
        self.channel = channel

    def path_id(self, name: str) -> str:
        """A record id from the path; one that cannot exist is :class:`NotFound`."""
        value = str(self.request.path_params[name])
        if not _RECORD_ID.fullmatch(value):
            raise _MalformedId
        return value

    def page(self) -> tuple[int, int]:
        """``after`` (default 0) and ``limit`` (default 100, at most 1000) from the query."""
        after = _query_int(self.request, "after", DEFAULT_AFTER, 0, MAX_SEQ)
        limit = _query_int(self.request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        return after, limit

    async def json_body(self) -> dict[str, Any]:
        """The body as a JSON object (an empty body is ``{}``), at most the frame size."""
        limit = self.node.settings.max_frame_size
        declared = self.request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            _refuse(ErrorCode.TOO_LARGE)
        body = bytearray()
        async for chunk in self.request.stream():
            body += chunk
            # Checked while reading: a missing or lying Content-Length buys nothing.
            if len(body) > limit:
                _refuse(ErrorCode.TOO_LARGE)
        if not body.strip():
            return {}
        try:
            data = json.loads(bytes(body).decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            # ValueError covers bad JSON, bad UTF-8 and over-long integer literals.
            _refuse()
        if not isinstance(data, dict):
            _refuse()
        return data


class _MalformedId(Exception):
    """Internal: a path id outside the id alphabet; answered as ``not_found``."""


def _refuse_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told not to.
    _refuse()


def _query_int(request: Request, key: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    # ASCII digits only: int() would also take "+5", " 5", "1_000" and other scripts' digits.
    if not _DIGITS.fullmatch(raw):
        _refuse()
    value = int(raw)
    if not minimum <= value <= maximum:
        _refuse()
    return value


def _text(body: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        _refuse()
    if len(value) > MAX_TEXT_CHARS:
        _refuse(ErrorCode.TOO_LARGE)
    try:
        # A lone surrogate is valid JSON but not Unicode; it would fail later, elsewhere.
        value.encode("utf-8")
    except UnicodeEncodeError:
        _refuse()
    return value


def _optional_id(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        _refuse()
    return value


def _json(data: Any, status: int = 200) -> JSONResponse:
    # Answers hold PHI: no cache between here and the client may keep them.
    return JSONResponse(data, status_code=status, headers=NO_STORE)


def _node(request: Request) -> Node:
    node: Node | None = getattr(request.app.state, "node", None)
    if node is None or not node.started:
        raise Unavailable("the node is not running")
    return node


def _api(method: str, path: str, handler: Handler) -> Route:
    """A route whose handler gets an authenticated :class:`ApiCall`; errors become bodies."""
    channel = f"http:{method} {path}"

    async def endpoint(request: Request) -> Response:
        try:
            node = _node(request)
            principal = authenticate(request, node.settings.secret)
        except Exception as exc:
            return error_response(error_code_for(exc))
        call = ApiCall(request, node, principal, channel)
        try:
            return await handler(call)
        except _Refused as exc:
            return error_response(exc.code)
        except _MalformedId:
            return await _malformed_id(call)
        except ClientDisconnect:
            # The client left (or was dropped as too slow) mid-body: no error of ours;
            # the access log records it (server.logs.AccessLogMiddleware).
            raise
        except Exception as exc:
            code = error_code_for(exc)
            if code is ErrorCode.INTERNAL:
                log.error(
                    "request failed",
                    exc_info=True,
                    extra={"method": method, "path_template": path, "error": type(exc).__name__},
                )
            return error_response(code)

    endpoint.__name__ = handler.__name__
    return Route(path, endpoint, methods=[method], name=handler.__name__.lstrip("_"))


async def _malformed_id(call: ApiCall) -> Response:
    # Such an id was never issued, so this is a look for what does not exist: recorded
    # like any other refusal, without the id (the trail holds only well-formed ids).
    try:
        await call.node.audit.record(
            AuditEntry(
                type=AuditType.ACCESS_DENIED,
                actor=call.principal,
                channel=call.channel,
                outcome=AuditOutcome.DENIED,
                reason=AuditReason.NO_SUCH_RECORD,
                on_behalf_of=_chain(call.principal),
            )
        )
    except Exception as exc:
        return error_response(error_code_for(exc))
    return error_response(ErrorCode.NOT_FOUND)


def _chain(principal: Principal) -> tuple[str, ...]:
    return (principal.act_for,) if principal.act_for else ()


# -- conversations -------------------------------------------------------------------


async def _create_conversation(call: ApiCall) -> Response:
    body = await call.json_body()
    agent_id = _optional_id(body, "agent_id")
    conversation = await call.node.host.create_conversation(call.principal, agent_id)
    return _json({"conversation_id": conversation.id, "chat_id": conversation.chat_id}, 201)


async def _conversation_events(call: ApiCall) -> Response:
    conversation_id = call.path_id("conversation_id")
    after, limit = call.page()
    host = call.node.host
    conversation = await host.find_conversation(
        call.principal, conversation_id, channel=call.channel
    )
    events = await call.node.store.events_after(conversation.chat_id, after, limit)
    if any(event.task_id is not None for event in events):
        # The page shows background tasks' contents: recorded before it leaves. open_chat
        # checks again and writes the one PHI_RECORD_VIEWED for this conversation's chat.
        await host.open_chat(call.principal, conversation.chat_id, channel=call.channel)
    return _events(events)


# -- tasks ---------------------------------------------------------------------------


async def _list_tasks(call: ApiCall) -> Response:
    conversation_id = call.request.query_params.get("conversation_id")
    if conversation_id is None or not conversation_id.strip():
        _refuse()
    if not _RECORD_ID.fullmatch(conversation_id):
        # Never issued, so it has no tasks: the same answer as a foreign conversation.
        return _json({"tasks": []})
    tasks = await call.node.host.list_tasks(call.principal, conversation_id, channel=call.channel)
    return _json({"tasks": [task.view() for task in tasks]})


async def _read_task(call: ApiCall) -> Response:
    task = await call.node.host.read_task(
        call.principal, call.path_id("task_id"), channel=call.channel
    )
    return _json({"task": task.view()})


async def _instruct_task(call: ApiCall) -> Response:
    task_id = call.path_id("task_id")
    text = _text(await call.json_body(), "text")
    assert text is not None
    event = await call.node.host.instruct(call.principal, task_id, text, channel=call.channel)
    return _json({"seq": event.seq}, 202)


async def _cancel_task(call: ApiCall) -> Response:
    task_id = call.path_id("task_id")
    reason = _text(await call.json_body(), "reason", optional=True)
    task = await call.node.host.cancel(call.principal, task_id, reason, channel=call.channel)
    return _json({"task": task.view()}, 202)


# -- chats ---------------------------------------------------------------------------


async def _list_chats(call: ApiCall) -> Response:
    chats = await call.node.host.list_chats(call.principal, channel=call.channel)
    states = await _task_states(call, chats)
    return _json({"chats": [_chat_wire(chat, states) for chat in chats]})


async def _task_states(call: ApiCall, chats: list[Chat]) -> dict[str, str]:
    # One query per conversation rather than one per task chat. Only the tasks of chats
    # the host has just listed for this principal are looked at.
    conversations = {chat.conversation_id for chat in chats if chat.kind is ChatKind.TASK}
    states: dict[str, str] = {}
    for conversation_id in sorted(conversations):
        tasks: list[Task] = await call.node.store.list_tasks(
            call.principal.workspace_id, conversation_id
        )
        states.update((task.id, task.state.value) for task in tasks)
    return states


def _chat_wire(chat: Chat, states: Mapping[str, str]) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "id": chat.id,
        "conversation_id": chat.conversation_id,
        "kind": chat.kind.value,
        "title": chat.title,
        "agent": chat.agent.to_wire(),
        "task_id": chat.task_id,
        "created_at": rfc3339(chat.created_at),
    }
    if chat.kind is ChatKind.TASK and chat.task_id is not None:
        state = states.get(chat.task_id)
        if state is not None:
            wire["state"] = state
    return wire


async def _chat_events(call: ApiCall) -> Response:
    chat_id = call.path_id("chat_id")
    after, limit = call.page()
    chat = await call.node.host.open_chat(call.principal, chat_id, channel=call.channel)
    return _events(await call.node.store.events_after(chat.id, after, limit))


def _events(events: list[StreamEvent]) -> Response:
    return _json({"events": [event.to_wire() for event in events]})


# -- audit ---------------------------------------------------------------------------


async def _audit_events(call: ApiCall) -> Response:
    if call.principal.role is not Role.AUDITOR:
        # The trail is not there for anyone else; the attempt itself is recorded.
        await call.node.audit.record(
            AuditEntry(
                type=AuditType.ACCESS_DENIED,
                actor=call.principal,
                channel=call.channel,
                outcome=AuditOutcome.DENIED,
                reason=AuditReason.NOT_OWNER,
                on_behalf_of=_chain(call.principal),
            )
        )
        raise NotFound("audit trail")
    after, limit = call.page()
    # An auditor sees its own workspace's records only; the chain itself is global.
    records = await anyio.to_thread.run_sync(
        lambda: call.node.trail.read(
            after_seq=after, workspace_id=call.principal.workspace_id, limit=limit
        )
    )
    return _json({"events": [record.to_dict() for record in records]})


# -- operations ----------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the node runs, the store answers and the bus is reachable."""
    node: Node | None = getattr(request.app.state, "node", None)
    ready = False
    if node is not None and node.started:
        with anyio.move_on_after(READY_TIMEOUT_S):
            try:
                await node.store.ping()
                # The in-process bus is always there; a networked one offers ping().
                bus_ping: Callable[[], Awaitable[object]] | None = getattr(node.bus, "ping", None)
                if bus_ping is not None:
                    await bus_ping()
                ready = True
            except Exception as exc:
                log.warning("not ready", extra={"error": type(exc).__name__})
    if ready:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable"}, status_code=503)


async def metrics(request: Request) -> Response:
    """Prometheus metrics of this node."""
    node: Node | None = getattr(request.app.state, "node", None)
    if node is None or not node.started:
        return error_response(ErrorCode.UNAVAILABLE)
    return PlainTextResponse(await render_node_metrics(node), media_type=CONTENT_TYPE)


def routes() -> list[Route]:
    """Every HTTP endpoint of PROTOCOL.md except the WebSocket ones."""
    return [
        _api("POST", "/v1/conversations", _create_conversation),
        _api("GET", "/v1/conversations/{conversation_id}/events", _conversation_events),
        _api("GET", "/v1/tasks", _list_tasks),
        _api("GET", "/v1/tasks/{task_id}", _read_task),
        _api("POST", "/v1/tasks/{task_id}/messages", _instruct_task),
        _api("POST", "/v1/tasks/{task_id}/cancel", _cancel_task),
        _api("GET", "/v1/chats", _list_chats),
        _api("GET", "/v1/chats/{chat_id}/events", _chat_events),
        _api("GET", "/v1/audit/events", _audit_events),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]

"""Structured logs: one JSON object per line on stderr, and nothing in them that is PHI.

A log line is built from the record's fixed format string (its ``%``-arguments are
dropped, never interpolated), its level, logger and time, and only those ``extra``
fields whose names are on :data:`ALLOWED_FIELDS` and whose values are plain scalars:
ids, codes, counts, durations. So a message text, a title, a name or a token passed by
mistake stays out. An exception contributes its type and where it was raised, never
its message, which may quote what it failed on.

:class:`AccessLogMiddleware` replaces uvicorn's access log, which prints the raw path
and query string: it logs the route template (``/v1/tasks/{task_id}``) instead.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import IO, Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The ``extra`` keys a log line may carry. Each holds an id, an enumeration, a number
#: or an exception's class name; none may hold free text.
ALLOWED_FIELDS: frozenset[str] = frozenset(
    {
        "conversation_id",
        "task_id",
        "chat_id",
        "workspace_id",
        "request_id",
        "node_id",
        "agent_id",
        "error",
        "code",
        "count",
        "interrupted",
        "type",
        "tool",
        "state",
        "status",
        "seq",
        "depth",
        "path_template",
        "method",
        "duration_ms",
        "close_code",
        "host",
        "port",
        "limit",
        "hard_limit",
        "waiting",
        "dropped_head_timeout",
        "dropped_body_timeout",
        "dropped_head_too_large",
        "dropped_evicted",
    }
)

# Ids, codes and class names are short; a long string is a mistake, so it is cut.
MAX_FIELD_CHARS = 200
MAX_FRAMES = 10
UNMATCHED_ROUTE = "unmatched"
# The status an access line gives a request whose client left before it was read
# (nginx's convention; it is never sent).
CLIENT_CLOSED_REQUEST = 499

_HANDLER_MARK = "_switchboard_json_handler"
_THIRD_PARTY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# Client libraries whose own lines could carry a tool's URL or what an MCP server sent
# (the SDK formats some with f-strings, which no filter can take apart): the node logs
# those events itself, by tool or server name.
_QUIET_LOGGERS = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "httpx2": logging.WARNING}
_QUIET_LOGGERS |= {"mcp": logging.CRITICAL + 1}
# The WebSocket protocol's two lines per socket opened (server.websocket_protocol).
_QUIET_LOGGERS |= {"uvicorn.error.websocket": logging.WARNING}
# Alembic narrates every start ("Context impl …"); its warnings and errors still show.
_QUIET_LOGGERS |= {"alembic": logging.WARNING}

access_log = logging.getLogger("switchboard.access")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON with allow-listed fields only."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        for key in sorted(ALLOWED_FIELDS & record.__dict__.keys()):
            value = _scalar(record.__dict__[key])
            if value is not _DROP:
                line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["exc_type"] = type(exc).__name__
            line["exc_frames"] = [
                f"{_short_path(frame.filename)}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(exc.__traceback__)[-MAX_FRAMES:]
            ]
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


_DROP = object()

# uvicorn's own life-cycle lines, whose arguments are a pid, a scheme, a host and a
# port: safe to show, and an operator needs them.
_SAFE_TEMPLATES = frozenset(
    {
        "Started server process [%d]",
        "Finished server process [%d]",
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
    }
)


def _message(record: logging.LogRecord) -> str:
    """The format string alone: its arguments are where values would be."""
    if not isinstance(record.msg, str):
        return type(record.msg).__name__
    if record.msg in _SAFE_TEMPLATES and record.args:
        try:
            return record.getMessage()
        except (TypeError, ValueError):
            return record.msg
    return record.msg


def _scalar(value: object) -> object:
    # bool before int: it is one, and json writes it as true/false either way.
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return round(value, 3) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        # StrEnum members are strings too: their value is what is logged.
        return str.__str__(value)[:MAX_FIELD_CHARS]
    return _DROP


def _short_path(filename: str) -> str:
    parts = filename.replace("\\", "/").rsplit("/", 2)
    return "/".join(parts[-2:])


# What uvicorn logs as an exception but is only a client breaking the protocol: the
# line is kept (an operator may want to count them), at WARNING, without a traceback.
_CLIENT_FAULTS: dict[str, int] = {
    # uvicorn answers this with close code 1007 (RFC 6455: inconsistent data).
    "Invalid UTF-8 sequence received from client.": 1007,
}


class ClientFaultFilter(logging.Filter):
    """Demotes uvicorn's records of a client's own protocol faults to WARNING.

    A client that sends a text frame of invalid UTF-8 is not a server error: the record
    loses its traceback and gains the close code it was answered with.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and record.levelno >= logging.ERROR:
            close_code = _CLIENT_FAULTS.get(record.msg) if isinstance(record.msg, str) else None
            if close_code is not None:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                record.exc_info, record.exc_text = None, None
                record.close_code = close_code
        return True


def configure_logging(
    level: str | int = "INFO", *, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record, uvicorn's included, as JSON lines to *stream* (stderr).

    Replaces the root logger's handlers, so nothing else prints records unfiltered.
    Returns the installed handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ClientFaultFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name, quiet in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet)
    return handler


class AccessLogMiddleware:
    """Logs each request (and socket) once: method, route template, status, duration.

    Never the concrete path or the query string: both can carry ids a caller guessed
    or text it typed. Sockets are logged as method ``WS`` when they end, with the
    close code when one is known.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        websocket = scope["type"] == "websocket"
        started = time.perf_counter()
        outcome: dict[str, int | None] = {"status": None, "close_code": None}

        async def observe_send(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                outcome["status"] = message["status"]
            elif kind == "websocket.accept":
                outcome["status"] = 101
            elif kind == "websocket.close":
                outcome["close_code"] = message.get("code", 1000)
                if outcome["status"] is None:
                    # Closed before the handshake: the server answers the upgrade 403.
                    outcome["status"] = 403
            await send(message)

        async def observe_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect" and outcome["close_code"] is None:
                outcome["close_code"] = message.get("code", 1005)
            return message

        gone = False
        try:
            await self.app(scope, observe_receive if websocket else receive, observe_send)
        except ClientDisconnect:
            # The client left before its request was read (or was dropped as too slow,
            # server.slow_clients): ordinary, and nothing can be answered any more.
            gone = True
        finally:
            status = CLIENT_CLOSED_REQUEST if gone else outcome["status"]
            extra: dict[str, object] = {
                "method": "WS" if websocket else scope.get("method", ""),
                "path_template": route_template(scope),
                # No response started: the app raised, and the server answers 500.
                "status": 500 if status is None and not websocket else status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            if websocket:
                extra["close_code"] = outcome["close_code"]
            access_log.info("request", extra=extra)


def route_template(scope: Scope) -> str:
    """The template of the route that matched *scope* (``/v1/tasks/{task_id}``)."""
    # Starlette's router records the matched route in the scope.
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE

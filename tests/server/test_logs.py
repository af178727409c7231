"""JSON logs: fixed messages, allow-listed fields, no arguments, no exception text;
and the access log, which names route templates, never paths or query strings."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.models import TaskState
from server.logs import ALLOWED_FIELDS, AccessLogMiddleware, JsonFormatter, configure_logging


def format_record(
    msg: object,
    *args: object,
    extra: dict[str, Any] | None = None,
    exc: BaseException | None = None,
) -> dict[str, Any]:
    record = logging.LogRecord("switchboard.test", logging.WARNING, __file__, 1, msg, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    for key, value in (extra or {}).items():
        setattr(record, key, value)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert isinstance(data, dict)
    return data


def test_a_record_is_one_json_object_with_time_level_logger_and_message() -> None:
    data = format_record("task finished", extra={"task_id": "task_1", "count": 3})
    assert data["level"] == "WARNING"
    assert data["logger"] == "switchboard.test"
    assert data["message"] == "task finished"
    assert data["task_id"] == "task_1"
    assert data["count"] == 3
    assert data["ts"].endswith("Z")


def test_arguments_are_never_interpolated() -> None:
    data = format_record("patient %s called about %s", "Ada Lovelace", "Ozempic")
    assert data["message"] == "patient %s called about %s"
    assert "Ada" not in json.dumps(data)
    assert "Ozempic" not in json.dumps(data)


def test_fields_off_the_allow_list_are_dropped() -> None:
    data = format_record(
        "message stored",
        extra={
            "chat_id": "chat_9",
            "text": "Ada's prior auth for Ozempic",
            "title": "Prior auth: Ozempic",
            "token": "eyJhbGciOi",
            "name": "Ada Lovelace",
        },
    )
    assert data["chat_id"] == "chat_9"
    for key in ("text", "title", "token", "name"):
        assert key not in data
    assert "Ozempic" not in json.dumps(data)


def test_only_scalar_values_are_kept_and_long_strings_are_cut() -> None:
    data = format_record(
        "odd fields",
        extra={
            "count": [1, 2],
            "code": {"text": "secret"},
            "error": "E" * 1000,
            "state": TaskState.WORKING,
            "interrupted": True,
            "duration_ms": 1.23456,
        },
    )
    assert "count" not in data
    assert "code" not in data
    assert data["error"] == "E" * 200
    assert data["state"] == "working"
    assert data["interrupted"] is True
    assert data["duration_ms"] == 1.235


def test_an_exception_gives_its_type_and_frames_but_not_its_message() -> None:
    try:
        raise ValueError("Ada Lovelace, born 1815-12-10")
    except ValueError as caught:
        data = format_record("lookup failed", exc=caught)
    assert data["exc_type"] == "ValueError"
    assert any("test_logs.py" in frame for frame in data["exc_frames"])
    assert "Ada" not in json.dumps(data)


@pytest.fixture
def captured_root() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("DEBUG", stream=stream)
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_configure_logging_routes_uvicorn_through_the_json_handler(
    captured_root: io.StringIO,
) -> None:
    logging.getLogger("uvicorn.error").info("Uvicorn running on %s://%s:%d", "http", "h", 1)
    (line,) = lines(captured_root)
    assert line["logger"] == "uvicorn.error"
    assert line["message"] == "Uvicorn running on %s://%s:%d"


async def by_id(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def broken(request: Request) -> Response:
    raise RuntimeError("boom")


ACCESS_APP = AccessLogMiddleware(
    Starlette(
        routes=[Route("/v1/tasks/{task_id}", by_id), Route("/broken", broken)],
    )
)


@pytest.mark.anyio
async def test_access_log_names_the_route_template_not_the_path_or_query(
    captured_root: io.StringIO,
) -> None:
    transport = httpx.ASGITransport(app=ACCESS_APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/v1/tasks/task_SECRET?text=Ozempic")).status_code == 200
        assert (await client.get("/nowhere/Ada-Lovelace")).status_code == 404
    access = [line for line in lines(captured_root) if line["logger"] == "switchboard.access"]
    assert [(line["method"], line["path_template"], line["status"]) for line in access] == [
        ("GET", "/v1/tasks/{task_id}", 200),
        ("GET", "unmatched", 404),
    ]
    assert all(line["duration_ms"] >= 0 for line in access)
    text = captured_root.getvalue()
    for secret in ("task_SECRET", "Ozempic", "Ada"):
        assert secret not in text


@pytest.mark.anyio
async def test_access_log_records_a_failed_request_as_500(captured_root: io.StringIO) -> None:
    transport = httpx.ASGITransport(app=ACCESS_APP, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/broken")).status_code == 500
    access = [line for line in lines(captured_root) if line["logger"] == "switchboard.access"]
    assert [(line["path_template"], line["status"]) for line in access] == [("/broken", 500)]


def test_the_allow_list_holds_no_free_text_fields() -> None:
    assert not ALLOWED_FIELDS & {"text", "title", "name", "token", "message", "reason", "args"}


def test_uvicorn_life_cycle_lines_keep_their_address_but_others_drop_arguments() -> None:
    formatter = JsonFormatter()
    running = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        ("http", "127.0.0.1", 8000),
        None,
    )
    assert json.loads(formatter.format(running))["message"] == (
        "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
    )
    other = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Hello %s", ("Alice Moreno",), None
    )
    assert json.loads(formatter.format(other))["message"] == "Hello %s"

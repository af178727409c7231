"""Workspaces applied from files: the store, the catalog, HTTP tools and MCP servers.

The HTTP endpoint and the MCP server are real processes (``tests.tool_servers``);
the store is SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agents.brains.rule import RuleBrain
from agents.demo.file import demo_spec
from agents.exceptions import ToolError
from agents.memory import MemoryStore
from agents.tools import ToolBox, ToolContext
from agents.workspace_file import Endpoint, ToolSpec, WorkspaceSpec, parse_workspace
from server.storage.engine import create_engine_for, create_schema
from server.storage.sql_store import SqlStore
from server.storage.workspaces import WorkspaceStore
from server.workspaces.apply import apply_spec
from server.workspaces.catalog import WorkspaceCatalog
from server.workspaces.http_tools import build_http_tool

from ..tool_servers import ELIGIBILITY_TOKEN, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn's endpoint and the MCP transports run on asyncio here


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with running("http") as url:
        yield url


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with running("mcp-http") as url:
        yield f"{url}/mcp"


def context(progress: list[str] | None = None) -> ToolContext:
    sink = progress if progress is not None else []
    return ToolContext("acme", "task_test", sink.append)


def http_spec(api: str, path: str, **changes: Any) -> ToolSpec:
    spec = ToolSpec(
        name="eligibility.check",
        kind="http",
        description="Ask the insurer.",
        expected_latency=3.0,
        parameters={
            "type": "object",
            "required": ["patient"],
            "properties": {"patient": {"type": "string"}},
        },
        endpoint=Endpoint(f"{api}{path}", "POST", {"Authorization": "ACME_ELIGIBILITY_AUTH"}),
        cleanup=Endpoint(f"{api}/release", "POST", {}),
        timeout=5.0,
    )
    return replace(spec, **changes)


@pytest.fixture
def auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_ELIGIBILITY_AUTH", f"Bearer {ELIGIBILITY_TOKEN}")


async def test_an_http_tool_sends_its_arguments_and_env_header_and_reads_the_answer(
    api: str, auth: None
) -> None:
    progress: list[str] = []
    async with httpx.AsyncClient() as client:
        tool = build_http_tool(http_spec(api, "/eligibility"), client)
        result = await tool.run(context(progress), {"patient": "Ann Lee", "hold": True})
        calls = (await client.get(f"{api}/calls")).json()
        note = await tool.cleanup(context(), {"patient": "Ann Lee"}) if tool.cleanup else None
    assert result.text == "Ann Lee is covered by Acme Health; the plan is active until 2027-12-31."
    assert result.data["covered"] is True
    assert result.left_open is True  # so a cancel still runs its clean-up
    assert progress == ["Asking eligibility.check…"]
    call = next(c for c in reversed(calls) if c["path"] == "/eligibility")
    assert call["json"] == {"patient": "Ann Lee", "hold": True}
    assert call["authorization"] == f"Bearer {ELIGIBILITY_TOKEN}"
    assert call["task"] == "task_test"
    assert note == "Released the eligibility hold."


@pytest.mark.parametrize(
    ("path", "deadline", "reason"),
    [
        ("/broken", 5.0, "eligibility.check answered HTTP 503."),
        ("/not-json", 5.0, "eligibility.check answered with something that is not JSON."),
        ("/slow", 0.3, "eligibility.check did not answer within 0.3 s."),
        ("/missing", 5.0, "eligibility.check answered HTTP 404."),
    ],
)
async def test_a_failing_endpoint_fails_the_step_with_a_plain_reason(
    api: str, auth: None, path: str, deadline: float, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as client:
        tool = build_http_tool(http_spec(api, path, timeout=deadline), client)
        with pytest.raises(ToolError) as caught:
            await tool.run(context(), {"patient": "Ann Lee"})
    assert str(caught.value) == reason
    # Neither the arguments nor the secret header reach a log line.
    assert "Ann Lee" not in caplog.text
    assert ELIGIBILITY_TOKEN not in caplog.text


async def test_an_unreachable_or_unconfigured_endpoint_and_bad_arguments_fail_plainly(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with httpx.AsyncClient() as client:
        unset = build_http_tool(http_spec(api, "/eligibility"), client)
        monkeypatch.delenv("ACME_ELIGIBILITY_AUTH", raising=False)
        with pytest.raises(ToolError, match=r"not configured: \$ACME_ELIGIBILITY_AUTH is not set"):
            await unset.run(context(), {"patient": "Ann Lee"})
        monkeypatch.setenv("ACME_ELIGIBILITY_AUTH", "x")
        gone = build_http_tool(http_spec("http://127.0.0.1:9", "/x"), client)
        with pytest.raises(ToolError, match="could not be reached"):
            await gone.run(context(), {"patient": "Ann Lee"})
        with pytest.raises(ToolError) as caught:
            await unset.run(context(), {"patient": 12345})
    assert str(caught.value) == (
        "eligibility.check was given arguments its schema refuses (type at patient)."
    )
    assert "12345" not in str(caught.value)


async def test_an_mcp_servers_tools_become_the_workspaces_over_streamable_http(
    mcp_url: str, tmp_path: Path
) -> None:
    spec = parse_workspace(
        f"""
        [workspace]
        id = "acme"
        [[agents]]
        id = "desk"
        primary = true
        description = "Desk."
        [[agents]]
        id = "clerk"
        description = "Finds documents."
        tools = ["documents.*"]
        [[mcp_servers]]
        name = "documents"
        url = "{mcp_url}"
        latency = {{ find_document = 4 }}
        """
    )
    async with catalog_for(tmp_path, spec) as catalog:
        kit = await catalog.kit("acme")
        assert kit is not None
        tool = kit.toolbox.get("documents.find_document")
        assert tool is not None
        assert tool.expected_latency == 4.0
        assert tool.parameters["properties"]["patient"]["type"] == "string"
        clerk = next(a for a in kit.agents if a.id == "clerk")
        assert clerk.tools == ("documents.find_document",)
        result = await tool.run(context(), {"patient": "Maria Lopez"})
        assert "penicillin" in result.text
        with pytest.raises(ToolError, match="refuses"):
            await tool.run(context(), {"kind": "intake"})


async def test_an_mcp_server_over_stdio_that_exits_is_started_again(tmp_path: Path) -> None:
    spec = parse_workspace(
        f"""
        [workspace]
        id = "acme"
        [[agents]]
        id = "desk"
        primary = true
        description = "Desk."
        tools = ["documents.find_document"]
        [[mcp_servers]]
        name = "documents"
        command = ["{sys.executable}", "-m", "tests.tool_servers", "mcp"]
        """
    )
    async with catalog_for(tmp_path, spec) as catalog:
        kit = await catalog.kit("acme")
        assert kit is not None
        tool = kit.toolbox.get("documents.find_document")
        assert tool is not None
        assert (
            "missing the insurance page"
            in (await tool.run(context(), {"patient": "Tom Baker"})).text
        )


class catalog_for:
    """A running catalog over a fresh SQLite store with *spec* applied."""

    def __init__(self, tmp_path: Path, spec: WorkspaceSpec) -> None:
        self.engine = create_engine_for(f"sqlite:///{tmp_path / 'w.db'}")
        self.spec = spec

    async def __aenter__(self) -> WorkspaceCatalog:
        create_schema(self.engine)
        self.store = WorkspaceStore(self.engine)
        await apply_spec(self.store, self.spec)
        self.catalog = WorkspaceCatalog(
            self.store, builtins=ToolBox(), brains={"rule": RuleBrain(MemoryStore())}
        )
        self.tg = anyio.create_task_group()
        await self.tg.__aenter__()
        await self.tg.start(self.catalog.run)
        return self.catalog

    async def __aexit__(self, *exc: object) -> None:
        self.tg.cancel_scope.cancel()
        await self.tg.__aexit__(None, None, None)
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'w.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def test_applying_is_idempotent_atomic_and_replaces_agents_and_patients(
    engine_url: str,
) -> None:
    engine = create_engine_for(engine_url)
    create_schema(engine)
    store = WorkspaceStore(engine)
    sql = SqlStore(engine)
    spec = replace(demo_spec(), id="wsapply")
    try:
        first = await apply_spec(store, spec)
        again = await apply_spec(store, spec)
        assert first.changed
        assert (again.revision, again.changed) == (first.revision, False)
        assert [a.id for a in await sql.list_agents("wsapply")] == [
            "front-desk", "outreach-caller", "prior-auth", "records-clerk"
        ]  # fmt: skip
        smaller = replace(spec, agents=spec.agents[:2], patients=spec.patients[:3])
        second = await apply_spec(store, smaller)
        assert second.revision == first.revision + 1
        assert len(await sql.list_agents("wsapply")) == 2
        # Patients are created or replaced, never removed by an edit to the file.
        assert len(await sql.list_patients("wsapply")) == 8
        moved = replace(spec.patients[0], phone="+1 555-0199")
        await apply_spec(store, replace(smaller, patients=(moved,)))
        alice = await sql.get_patient("wsapply", moved.id)
        assert alice is not None
        assert alice.phone == "+1 555-0199"
        kept = replace(smaller, directory="store", patients=())
        await apply_spec(store, kept)
        assert len(await sql.list_patients("wsapply")) == 8  # "store": left as it was
        stored = await store.get("wsapply")
        assert stored is not None
        assert stored.revision == first.revision + 3
        assert await store.revision("wsapply") == stored.revision
    finally:
        engine.dispose()


async def test_the_catalog_takes_a_reapplied_workspace_at_the_next_look(tmp_path: Path) -> None:
    spec = replace(demo_spec(), id="acme", patients=(), directory="store")
    async with catalog_for(tmp_path, spec) as catalog:
        first = await catalog.kit("acme")
        assert first is not None
        assert await catalog.kit("acme") is first  # nothing changed: the same kit
        renamed = replace(
            spec, agents=(replace(spec.agents[0], name="Reception"), *spec.agents[1:])
        )
        await apply_spec(WorkspaceStore(catalog._store._engine), renamed)
        second = await catalog.kit("acme")
        assert second is not None
        assert second.revision != first.revision
        assert second.agents[0].name == "Reception"
        assert await catalog.kit("nobody") is None


async def test_an_mcp_server_that_cannot_start_costs_a_turn_nothing(tmp_path: Path) -> None:
    spec = parse_workspace(
        """
        [workspace]
        id = "acme"
        [[agents]]
        id = "desk"
        primary = true
        description = "Desk."
        tools = ["documents.find_document"]
        [[mcp_servers]]
        name = "documents"
        command = ["/nonexistent/documents-mcp"]
        """
    )
    async with catalog_for(tmp_path, spec) as catalog:
        # Well inside the 10 s a listing may take: the failed start is known at once.
        with anyio.fail_after(5):
            kit = await catalog.kit("acme")
        assert kit is not None
        assert kit.toolbox.get("documents.find_document") is None
        assert kit.agents[0].tools == ("documents.find_document",)

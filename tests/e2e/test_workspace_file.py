"""A workspace of one's own: applied from a file to a node with a real secret.

Everything is real: ``switchboard workspace apply`` in its own process, ``switchboard
serve`` (uvicorn) on a real secret (so no demo workspace), the workspace's HTTP
endpoint (uvicorn), and its MCP server (the official SDK, over stdio, started by the
node), driven over the WebSocket like any client would.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.auth import issue_token

from ..tool_servers import ELIGIBILITY_TOKEN, running
from .conftest import ROOT, conversation_ws, headers, open_wire

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SECRET = "e2e-" + secrets.token_urlsafe(32)

WORKSPACE = """
[workspace]
id = "northwind"
name = "Northwind Physio"

[[agents]]
id = "reception"
name = "Reception"
primary = true
description = "Answers patients and staff at Northwind Physio."

[[agents]]
id = "benefits-checker"
name = "{benefits_name}"
description = "Checks a patient's insurance eligibility and coverage with the insurer."
examples = ["check Maria's insurance eligibility", "is Tom covered for physio"]
tools = ["eligibility.check"]

[[agents]]
id = "document-clerk"
name = "Document clerk"
description = "Finds patients' documents, such as intake forms and referrals."
examples = ["find the intake form for Maria", "pull Tom's referral letter"]
tools = ["documents.*"]

[[tools]]
name = "eligibility.check"
description = "Ask the insurer whether a patient is covered."
expected_latency = 3
url = "http://127.0.0.1:{http_port}/eligibility"
headers_from_env = {{ Authorization = "NORTHWIND_ELIGIBILITY_AUTH" }}
timeout = 5

[tools.parameters]
type = "object"
required = ["patient"]
properties.patient = {{ type = "string" }}

[tools.cleanup]
url = "http://127.0.0.1:{http_port}/release"

[[mcp_servers]]
name = "documents"
command = ["{python}", "-m", "tests.tool_servers", "mcp"]
expected_latency = 2

[patients]
source = "inline"

[[patients.records]]
id = "pt-maria"
name = "Maria Lopez"
date_of_birth = "1979-04-12"

[[patients.records]]
id = "pt-tom"
name = "Tom Baker"
date_of_birth = "1961-09-30"
"""


@pytest.fixture(scope="module")
def eligibility_api() -> Iterator[str]:
    """The workspace's own HTTP endpoint, in its own process."""
    with running("http") as url:
        yield url


def write_workspace(path: Path, api: str, *, benefits_name: str = "Benefits checker") -> Path:
    path.write_text(
        WORKSPACE.format(
            http_port=api.rsplit(":", 1)[1], python=sys.executable, benefits_name=benefits_name
        )
    )
    return path


def apply(path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "SWITCHBOARD_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "server", "workspace", "apply", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def person_token() -> str:
    return issue_token(SECRET, workspace="northwind", sub="staff-1", role="person", name="Kim")


async def test_a_workspace_file_serves_conversations_with_its_own_http_and_mcp_tools(
    tmp_path: Path, server_factory: Any, eligibility_api: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'northwind.db'}"
    path = write_workspace(tmp_path / "northwind.toml", eligibility_api)
    applied = apply(path, database_url)
    assert applied.returncode == 0, applied.stderr
    assert "workspace northwind applied: revision 1" in applied.stdout
    again = apply(path, database_url)
    assert "workspace northwind unchanged at revision 1" in again.stdout

    server = server_factory(
        database_url,
        SWITCHBOARD_SECRET=SECRET,
        NORTHWIND_ELIGIBILITY_AUTH=f"Bearer {ELIGIBILITY_TOKEN}",
    )
    tok = person_token()
    async with httpx.AsyncClient(base_url=server.http) as client:
        # A real secret: no demo workspace, only what was applied.
        demo = issue_token(SECRET, workspace="demo", sub="p", role="person")
        assert (
            await client.post("/v1/conversations", json={}, headers=headers(demo))
        ).status_code == 404
        created = await client.post("/v1/conversations", json={}, headers=headers(tok))
        assert created.status_code == 201, created.text
        conversation = created.json()

    async with open_wire(conversation_ws(server, conversation["conversation_id"]), tok) as wire:
        seq = await wire.say("Could you check Maria Lopez's insurance eligibility?")
        reply = await wire.message(since=seq, kind="reply")
        assert "benefits checker" in reply["text"].lower()
        benefits = wire.views()[0]
        assert benefits["agent"] == {"id": "benefits-checker", "name": "Benefits checker"}
        assert benefits["title"] == "Benefits checker for Maria L."
        done = await wire.task_state(benefits["id"], "completed", "failed", within=20)
        assert done["state"] == "completed", done
        assert "covered by Acme Health" in done["result"]
        followup = await wire.message(since=seq, kind="followup")
        assert "covered by Acme Health" in followup["text"]

        seq = await wire.say("please find the intake form for Tom Baker")
        await wire.message(since=seq, kind="reply")
        documents = next(v for v in wire.views() if v["agent"]["id"] == "document-clerk")
        done = await wire.task_state(documents["id"], "completed", "failed", within=30)
        assert done["state"] == "completed", done
        assert "missing the insurance page" in done["result"]

    async with httpx.AsyncClient() as client:
        calls = (await client.get(f"{eligibility_api}/calls")).json()
    mine = [c for c in calls if c["task"] == benefits["id"]]
    assert len(mine) == 1
    # The arguments came from the words and the directory, the header from the
    # environment; neither the token nor a patient's name reached the node's log.
    assert mine[0]["json"] == {"patient": "Maria Lopez"}
    assert mine[0]["authorization"] == f"Bearer {ELIGIBILITY_TOKEN}"
    logs = server.logs()
    assert ELIGIBILITY_TOKEN not in logs
    assert "Maria" not in logs
    assert "Tom Baker" not in logs

    # Applied again while the node runs: the conversation's next turn has the change.
    renamed = write_workspace(path, eligibility_api, benefits_name="Coverage desk")
    applied = apply(renamed, database_url)
    assert "workspace northwind applied: revision 2" in applied.stdout, applied.stderr
    async with open_wire(
        conversation_ws(server, conversation["conversation_id"]),
        tok,
        resume_after=wire.last_seq,
    ) as wire:
        seq = await wire.say("check Tom Baker's insurance eligibility")
        await wire.message(since=seq, kind="reply")
        view = wire.views()[0]
        assert view["agent"] == {"id": "benefits-checker", "name": "Coverage desk"}
        done = await wire.task_state(view["id"], "completed", "failed", within=20)
        assert "Tom Baker is covered" in done["result"]


def test_a_bad_workspace_file_names_line_and_key_and_changes_nothing(
    tmp_path: Path, eligibility_api: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'northwind.db'}"
    good = write_workspace(tmp_path / "northwind.toml", eligibility_api)
    assert apply(good, database_url).returncode == 0
    text = good.read_text().replace('tools = ["eligibility.check"]', 'tools = ["eligibility.chek"]')
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    refused = apply(bad, database_url)
    assert refused.returncode == 2
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "eligibility.chek" in row)
    assert f"bad.toml:{line}: agents[1].tools[0]: no tool 'eligibility.chek'" in refused.stderr
    # Nothing was half-applied: the stored workspace is still revision 1.
    env = {**os.environ, "DATABASE_URL": database_url, "SWITCHBOARD_SECRET": SECRET}
    shown = subprocess.run(
        [sys.executable, "-m", "server", "workspace", "show", "northwind"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "revision 1" in shown.stdout
    assert "tools eligibility.check" in shown.stdout
    assert "Maria" not in shown.stdout  # patients are shown by count only

"""The HTTP API in-process: auth, ownership as 404, audit of every content read, limits.

The app runs with its real lifespan (SQLite in a temporary file, the demo workspace);
requests go through httpx's ASGI transport, so no socket is opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sniffio
from starlette.applications import Starlette

from agents.demo.patients import DEMO_WORKSPACE
from agents.demo.workspace import FRONT_DESK, OUTREACH_CALLER
from agents.models import (
    Author,
    Chat,
    ChatKind,
    Message,
    MessageKind,
    MessageRole,
    Task,
    TaskState,
    TaskUpdate,
    new_id,
    utcnow,
)
from agents.ports import Changes, NewEvent
from audit import AuditRecord
from server.app import create_app
from server.auth import issue_token
from server.node import Node
from server.settings import Settings

SECRET = "http-api-test-secret-long-enough-for-hs256"
OUTREACH = Author(OUTREACH_CALLER, "Outreach caller")
NOT_FOUND = b'{"error":{"code":"not_found","message":"not found"}}'


def token(
    sub: str, role: str = "person", *, workspace: str = DEMO_WORKSPACE, **extra: Any
) -> dict[str, str]:
    signed = issue_token(SECRET, workspace=workspace, sub=sub, role=role, **extra)
    return {"authorization": f"Bearer {signed}"}


ADA = token("person_ada")
BOB = token("person_bob")
AUDITOR = token("auditor_1", "auditor")


@dataclass
class Api:
    client: httpx.AsyncClient
    node: Node

    def audit(self, after: int = 0) -> list[AuditRecord]:
        return self.node.trail.read(after_seq=after, limit=1000)

    def audit_head(self) -> int:
        head = self.node.trail.head()
        return 0 if head is None else head.seq


@dataclass
class Seeded:
    conversation_id: str
    conversation_chat: str
    task: Task


def make_app(tmp_path: Path) -> Starlette:
    settings = Settings.from_env(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
            "SWITCHBOARD_SECRET": SECRET,
            "SWITCHBOARD_DEMO": "1",
            "SWITCHBOARD_TOOL_LATENCY_SCALE": "0.01",
            "SWITCHBOARD_NODE_ID": "node-test",
            "SWITCHBOARD_MAX_FRAME_SIZE": "32768",
        }
    )
    return create_app(settings)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    app = make_app(tmp_path)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, app.state.node)


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    """Ada's conversation with one working task, its chat, and news of it in both chats."""
    response = await api.client.post("/v1/conversations", headers=ADA)
    assert response.status_code == 201
    conversation = response.json()
    now = utcnow()
    task_id, chat_id = new_id("task"), new_id("chat")
    task = Task(
        id=task_id,
        workspace_id=DEMO_WORKSPACE,
        conversation_id=conversation["conversation_id"],
        chat_id=chat_id,
        title="Prior auth: Ozempic",
        agent=OUTREACH,
        state=TaskState.WORKING,
        depth=1,
        parent_id=None,
        owner_agent_id=FRONT_DESK,
        person_id="person_ada",
        created_at=now,
        updated_at=now,
    )
    chat = Chat(
        chat_id,
        DEMO_WORKSPACE,
        conversation["conversation_id"],
        ChatKind.TASK,
        task.title,
        OUTREACH,
        "person_ada",
        now + timedelta(seconds=1),
        task_id,
    )
    await api.node.store.commit(
        Changes(
            chats=[chat],
            tasks=[task],
            events=[
                NewEvent(chat_id, TaskUpdate(task)),
                NewEvent(
                    chat_id,
                    Message(MessageRole.AGENT, OUTREACH, MessageKind.PROGRESS, "Calling the payer"),
                ),
                NewEvent(conversation["chat_id"], TaskUpdate(task)),
            ],
        )
    )
    return Seeded(conversation["conversation_id"], conversation["chat_id"], task)


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404
    assert response.content == NOT_FOUND


@pytest.mark.anyio
async def test_while_the_app_runs_its_threads_loop_library_is_named_for_sniffio(
    tmp_path: Path, anyio_backend: str
) -> None:
    app = make_app(tmp_path)
    before = sniffio.thread_local.name
    async with app.router.lifespan_context(app):
        assert sniffio.thread_local.name == anyio_backend
        assert sniffio.current_async_library() == anyio_backend
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/healthz")).status_code == 200
    assert sniffio.thread_local.name == before


# -- authentication --------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_request_without_a_valid_token_is_401_with_a_fixed_body(api: Api) -> None:
    expired = issue_token(
        SECRET,
        workspace=DEMO_WORKSPACE,
        sub="person_ada",
        role="person",
        now=utcnow() - timedelta(hours=2),
    )
    forged = issue_token(
        "another-secret-that-is-also-long-enough",
        workspace=DEMO_WORKSPACE,
        sub="person_ada",
        role="person",
    )
    bodies = set()
    for headers in (
        {},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer not-a-jwt"},
        {"authorization": f"Bearer {expired}"},
        {"authorization": f"Bearer {forged}"},
    ):
        response = await api.client.get("/v1/chats", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        bodies.add(response.content)
    assert bodies == {b'{"error":{"code":"unauthorized","message":"unauthorized"}}'}


# -- conversations ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_person_starts_a_conversation_with_the_primary_agent(api: Api) -> None:
    response = await api.client.post("/v1/conversations", headers=ADA, json={})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"conversation_id", "chat_id"}
    conversation = await api.node.store.get_conversation(DEMO_WORKSPACE, body["conversation_id"])
    assert conversation is not None
    assert conversation.person_id == "person_ada"
    assert conversation.agent_id == FRONT_DESK


@pytest.mark.anyio
async def test_a_conversation_needs_a_known_agent_and_a_person(api: Api) -> None:
    unknown = await api.client.post("/v1/conversations", headers=ADA, json={"agent_id": "agent_x"})
    assert_not_found(unknown)
    agent = await api.client.post("/v1/conversations", headers=token(FRONT_DESK, "agent"))
    assert_not_found(agent)
    bridge = token("bridge_1", "service", act_for="person_ada")
    assert (await api.client.post("/v1/conversations", headers=bridge)).status_code == 201


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"[]", 400),
        (b"{not json", 400),
        (b'{"agent_id": 7}', 400),
        (b'{"agent_id": NaN}', 400),
        (b"\xff\xfe", 400),
        (b'{"agent_id": "' + b"a" * 40_000 + b'"}', 413),
    ],
)
async def test_a_malformed_or_oversized_body_is_refused(
    api: Api, content: bytes, status: int
) -> None:
    response = await api.client.post("/v1/conversations", headers=ADA, content=content)
    assert response.status_code == status
    assert response.json()["error"]["code"] == ("too_large" if status == 413 else "bad_frame")


@pytest.mark.anyio
async def test_conversation_events_with_task_news_are_an_audited_read(
    api: Api, seeded: Seeded
) -> None:
    before = api.audit_head()
    url = f"/v1/conversations/{seeded.conversation_id}/events"
    response = await api.client.get(url, headers=ADA)
    assert response.status_code == 200
    (event,) = response.json()["events"]
    assert event["seq"] == 1
    assert event["type"] == "task"
    assert event["task"]["id"] == seeded.task.id
    (viewed,) = api.audit(before)
    assert viewed.type == "PHI_RECORD_VIEWED"
    assert viewed.chat_id == seeded.conversation_chat
    assert viewed.channel == "http:GET /v1/conversations/{conversation_id}/events"
    # An empty page shows nothing of a task: nothing to record.
    before = api.audit_head()
    response = await api.client.get(f"{url}?after=1", headers=ADA)
    assert response.json() == {"events": []}
    assert api.audit(before) == []


@pytest.mark.anyio
async def test_another_persons_conversation_is_404_like_a_random_one(
    api: Api, seeded: Seeded
) -> None:
    before = api.audit_head()
    assert_not_found(
        await api.client.get(f"/v1/conversations/{seeded.conversation_id}/events", headers=BOB)
    )
    assert_not_found(
        await api.client.get(f"/v1/conversations/{new_id('conv')}/events", headers=BOB)
    )
    reasons = [(r.type.value, r.reason.value) for r in api.audit(before)]
    assert reasons == [("ACCESS_DENIED", "not_owner"), ("ACCESS_DENIED", "no_such_record")]


# -- tasks -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_owner_reads_a_task_and_the_read_is_recorded_first(
    api: Api, seeded: Seeded
) -> None:
    before = api.audit_head()
    response = await api.client.get(f"/v1/tasks/{seeded.task.id}", headers=ADA)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"task": seeded.task.view()}
    (viewed,) = api.audit(before)
    assert viewed.type == "PHI_RECORD_VIEWED"
    assert viewed.task_id == seeded.task.id
    assert viewed.actor_id == "person_ada"
    assert viewed.channel == "http:GET /v1/tasks/{task_id}"


@pytest.mark.anyio
async def test_a_task_the_caller_does_not_own_does_not_exist(api: Api, seeded: Seeded) -> None:
    task = seeded.task.id
    other_workspace = token("person_ada", workspace="ws_elsewhere")
    other_agent = token(OUTREACH_CALLER, "agent")
    before = api.audit_head()
    for headers in (BOB, other_workspace, other_agent):
        assert_not_found(await api.client.get(f"/v1/tasks/{task}", headers=headers))
        assert_not_found(
            await api.client.post(
                f"/v1/tasks/{task}/messages", headers=headers, json={"text": "go on"}
            )
        )
        assert_not_found(
            await api.client.post(f"/v1/tasks/{task}/cancel", headers=headers, json={})
        )
        assert_not_found(
            await api.client.get(f"/v1/chats/{seeded.task.chat_id}/events", headers=headers)
        )
    for url in (f"/v1/tasks/{new_id('task')}", "/v1/tasks/no.such:id", f"/v1/tasks/{'x' * 300}"):
        assert_not_found(await api.client.get(url, headers=BOB))
    records = api.audit(before)
    assert {r.type.value for r in records} == {"ACCESS_DENIED"}
    assert len(records) == 3 * 4 + 3
    # Route templates only: no concrete id or query string in any channel.
    assert all("{" in r.channel and task not in r.channel for r in records)


@pytest.mark.anyio
async def test_the_task_list_holds_what_the_caller_may_see(api: Api, seeded: Seeded) -> None:
    url = f"/v1/tasks?conversation_id={seeded.conversation_id}"
    mine = await api.client.get(url, headers=ADA)
    assert mine.json() == {"tasks": [seeded.task.view()]}
    assert (await api.client.get(url, headers=BOB)).json() == {"tasks": []}
    assert (await api.client.get("/v1/tasks?conversation_id=bad.id", headers=ADA)).json() == {
        "tasks": []
    }
    assert (await api.client.get("/v1/tasks", headers=ADA)).status_code == 400


@pytest.mark.anyio
async def test_instructions_for_a_task_that_is_not_running_conflict(
    api: Api, seeded: Seeded
) -> None:
    url = f"/v1/tasks/{seeded.task.id}/messages"
    response = await api.client.post(url, headers=ADA, json={"text": "Ask for the fax number"})
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "conflict", "message": "the task has already ended"}
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"text": ""}, 400),
        ({"text": "   "}, 400),
        ({"text": 5}, 400),
        ({"text": "x" * 16_001}, 413),
    ],
)
async def test_instruction_text_is_checked(
    api: Api, seeded: Seeded, body: dict[str, Any], status: int
) -> None:
    url = f"/v1/tasks/{seeded.task.id}/messages"
    response = await api.client.post(url, headers=ADA, json=body)
    assert response.status_code == status


@pytest.mark.anyio
async def test_cancel_answers_the_task(api: Api, seeded: Seeded) -> None:
    url = f"/v1/tasks/{seeded.task.id}/cancel"
    response = await api.client.post(url, headers=ADA, json={"reason": "no longer needed"})
    assert response.status_code == 202
    assert response.json()["task"]["id"] == seeded.task.id
    assert (await api.client.post(url, headers=ADA, json={"reason": 3})).status_code == 400


# -- chats -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_chats_view_lists_newest_first_with_task_states(api: Api, seeded: Seeded) -> None:
    response = await api.client.get("/v1/chats", headers=ADA)
    assert response.status_code == 200
    task_chat, conversation_chat = response.json()["chats"]
    assert task_chat == {
        "id": seeded.task.chat_id,
        "conversation_id": seeded.conversation_id,
        "kind": "task",
        "title": "Prior auth: Ozempic",
        "agent": {"id": OUTREACH_CALLER, "name": "Outreach caller"},
        "task_id": seeded.task.id,
        "created_at": task_chat["created_at"],
        "state": "working",
    }
    assert conversation_chat["id"] == seeded.conversation_chat
    assert conversation_chat["kind"] == "conversation"
    assert "state" not in conversation_chat
    assert (await api.client.get("/v1/chats", headers=BOB)).json() == {"chats": []}


@pytest.mark.anyio
async def test_a_chats_events_page_and_are_an_audited_read(api: Api, seeded: Seeded) -> None:
    url = f"/v1/chats/{seeded.task.chat_id}/events"
    before = api.audit_head()
    page = (await api.client.get(f"{url}?limit=1", headers=ADA)).json()["events"]
    assert [e["seq"] for e in page] == [1]
    rest = (await api.client.get(f"{url}?after=1", headers=ADA)).json()["events"]
    assert [(e["seq"], e["type"]) for e in rest] == [(2, "message")]
    assert rest[0]["text"] == "Calling the payer"
    viewed = api.audit(before)
    assert [(r.type.value, r.chat_id, r.task_id) for r in viewed] == [
        ("PHI_RECORD_VIEWED", seeded.task.chat_id, seeded.task.id)
    ] * 2
    assert {r.channel for r in viewed} == {"http:GET /v1/chats/{chat_id}/events"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "query",
    [
        "after=-1",
        "after=x",
        "after=1.5",
        "after=%2B1",
        "limit=0",
        "limit=1001",
        "after=99999999999999999999",
    ],
)
async def test_paging_parameters_are_checked(api: Api, seeded: Seeded, query: str) -> None:
    response = await api.client.get(
        f"/v1/chats/{seeded.conversation_chat}/events?{query}", headers=ADA
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_frame"


# -- audit -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_auditor_reads_its_own_workspaces_trail(api: Api, seeded: Seeded) -> None:
    await api.client.get(f"/v1/tasks/{seeded.task.id}", headers=ADA)
    await api.client.get("/v1/chats", headers=token("person_eve", workspace="ws_elsewhere"))
    response = await api.client.get("/v1/audit/events?limit=1000", headers=AUDITOR)
    assert response.status_code == 200
    events = response.json()["events"]
    assert events
    assert {e["workspace_id"] for e in events} == {DEMO_WORKSPACE}
    assert any(e["task_id"] == seeded.task.id and e["type"] == "PHI_RECORD_VIEWED" for e in events)
    first = events[0]["seq"]
    later = (await api.client.get(f"/v1/audit/events?after={first}", headers=AUDITOR)).json()
    assert [e["seq"] for e in later["events"]] == [e["seq"] for e in events[1:]]
    elsewhere = token("auditor_2", "auditor", workspace="ws_elsewhere")
    theirs = (await api.client.get("/v1/audit/events", headers=elsewhere)).json()["events"]
    assert {e["workspace_id"] for e in theirs} == {"ws_elsewhere"}


@pytest.mark.anyio
async def test_the_trail_does_not_exist_for_anyone_but_auditors(api: Api) -> None:
    before = api.audit_head()
    assert_not_found(await api.client.get("/v1/audit/events", headers=ADA))
    (denied,) = api.audit(before)
    assert denied.type == "ACCESS_DENIED"
    assert denied.channel == "http:GET /v1/audit/events"


# -- operations ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_health_readiness_and_metrics(api: Api, seeded: Seeded) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ok"}
    metrics = await api.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'switchboard_tasks{state="working"} 1' in metrics.text
    assert "switchboard_audit_events_written_total " in metrics.text


@pytest.mark.anyio
async def test_before_the_node_starts_only_liveness_answers(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/metrics")).status_code == 503
        response = await client.get("/v1/chats", headers=ADA)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"


@pytest.mark.anyio
async def test_an_allowed_origin_may_call_the_api_from_the_browser() -> None:
    from server.app import create_app
    from server.settings import Settings

    settings = Settings(allowed_origins=("https://clinic.example",))
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        allowed = await client.options(
            "/v1/conversations",
            headers={
                "Origin": "https://clinic.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://clinic.example"
        refused = await client.options(
            "/v1/conversations",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in refused.headers

"""Every route of the app and every socket command, probed by everyone who may not see
what they name: a task, a chat or a conversation of someone else is answered exactly
as an id that never existed, byte for byte, and every look at it is on the audit trail.

The routes are not listed by hand: they are read from the app (``create_app().routes``)
and the socket commands from :class:`server.protocol.FrameType`. Each must be in the
tables below, which say how to probe it; a route or command added later without a row
there makes :func:`test_every_route_and_command_has_a_probe` and the end-to-end test
fail, so nothing new escapes the check by being forgotten.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.app import create_app
from server.protocol import FrameType
from server.settings import Settings
from tests.e2e.conftest import (
    ANSWER_TYPES,
    ServerProcess,
    Wire,
    chat_ws,
    conversation_ws,
    headers,
    open_wire,
    start_conversation,
    token,
)

from .support import audit_head, audit_rows, expired_token, forged_token, random_id

# -- the tables: what each path parameter, route and socket command is -----------------

ID_PARAMS: Mapping[str, str] = {
    "task_id": "task",
    "chat_id": "chat",
    "conversation_id": "conversation",
}
"""Path parameters that name a record, and the kind of record they name."""

OTHER_PARAMS: Mapping[str, str] = {"path": "a file under /static (public, names no record)"}


class Kind(enum.StrEnum):
    RECORD = "record"
    """Reaches the one task, chat or conversation its path names: owners only."""
    LIST = "list"
    """Lists what the caller may see; ``GET /v1/tasks`` names a conversation in its query."""
    CREATE = "create"
    """Starts something of the caller's own."""
    AUDIT = "audit"
    """The audit trail: the workspace's auditors only."""
    PUBLIC = "public"
    """Operations endpoints: the same for everyone, and about no record."""
    PAGE = "page"
    """A static page; an id in its path is read only by the page's own script."""
    DEMO_TOKEN = "demo token"
    """Mints a demo visitor's token: never someone else's."""
    STATIC = "static"
    """The browser clients' files."""


ROUTES: Mapping[tuple[str, str], Kind] = {
    ("POST", "/v1/conversations"): Kind.CREATE,
    ("GET", "/v1/conversations/{conversation_id}/events"): Kind.RECORD,
    ("GET", "/v1/tasks"): Kind.LIST,
    ("GET", "/v1/tasks/{task_id}"): Kind.RECORD,
    ("POST", "/v1/tasks/{task_id}/messages"): Kind.RECORD,
    ("POST", "/v1/tasks/{task_id}/cancel"): Kind.RECORD,
    ("GET", "/v1/chats"): Kind.LIST,
    ("GET", "/v1/chats/{chat_id}/events"): Kind.RECORD,
    ("GET", "/v1/audit/events"): Kind.AUDIT,
    ("GET", "/healthz"): Kind.PUBLIC,
    ("GET", "/readyz"): Kind.PUBLIC,
    ("GET", "/metrics"): Kind.PUBLIC,
    ("WS", "/v1/conversations/{conversation_id}/ws"): Kind.RECORD,
    ("WS", "/v1/chats/{chat_id}/ws"): Kind.RECORD,
    ("WS", "/v1/chats/ws"): Kind.LIST,
    ("GET", "/"): Kind.PAGE,
    ("GET", "/chats"): Kind.PAGE,
    ("GET", "/chats/{chat_id}"): Kind.PAGE,
    ("POST", "/demo/token"): Kind.DEMO_TOKEN,
    ("MOUNT", "/static"): Kind.STATIC,
}
"""Every route of the app by (method, template); ``HEAD`` goes with ``GET``."""

QUERY_IDS: Mapping[tuple[str, str], Mapping[str, str]] = {
    ("GET", "/v1/tasks"): {"conversation_id": "conversation"},
}
"""Routes that take a record's id in the query string instead of the path."""

BODIES: Mapping[tuple[str, str], Any] = {
    ("POST", "/v1/conversations"): {},
    ("POST", "/v1/tasks/{task_id}/messages"): {"text": "Forward everything to me"},
    ("POST", "/v1/tasks/{task_id}/cancel"): {"reason": "it is mine now"},
    ("POST", "/demo/token"): {},
}


class Command(enum.StrEnum):
    TASK = "names a task"
    LIST = "lists this conversation's tasks"
    PLAIN = "names no record"
    GREETING = "the handshake"
    CREDENTIAL = "renews the socket's token"


COMMANDS: Mapping[FrameType, Command] = {
    FrameType.HELLO: Command.GREETING,
    FrameType.SAY: Command.PLAIN,
    FrameType.TASK_LIST: Command.LIST,
    FrameType.TASK_STATUS: Command.TASK,
    FrameType.TASK_INSTRUCT: Command.TASK,
    FrameType.TASK_CANCEL: Command.TASK,
    FrameType.SPEECH: Command.PLAIN,
    FrameType.PING: Command.PLAIN,
    FrameType.REFRESH: Command.CREDENTIAL,
}


@dataclass(frozen=True)
class AppRoute:
    method: str
    path: str
    params: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return ("GET" if self.method == "HEAD" else self.method, self.path)

    @property
    def kind(self) -> Kind:
        return ROUTES[self.key]

    @property
    def id_params(self) -> dict[str, str]:
        named = {p: ID_PARAMS[p] for p in self.params if p in ID_PARAMS}
        return {**named, **QUERY_IDS.get(self.key, {})}


def app_routes(routes: Iterable[BaseRoute] | None = None, prefix: str = "") -> list[AppRoute]:
    """Every (method, template) the app answers, read from the app itself."""
    if routes is None:
        routes = create_app(Settings()).routes
    found: list[AppRoute] = []
    for route in routes:
        if isinstance(route, Route):
            params = tuple(route.param_convertors)
            for method in sorted(route.methods or {"GET"}):
                found.append(AppRoute(method, prefix + route.path, params))
        elif isinstance(route, WebSocketRoute):
            found.append(AppRoute("WS", prefix + route.path, tuple(route.param_convertors)))
        elif isinstance(route, Mount) and route.routes:
            found.extend(app_routes(route.routes, prefix + route.path))
        elif isinstance(route, Mount):
            found.append(AppRoute("MOUNT", prefix + route.path, tuple(route.param_convertors)))
        else:
            found.append(AppRoute("UNKNOWN", repr(route), ()))
    return found


def test_every_route_and_command_has_a_probe() -> None:
    routes = app_routes()
    unknown = sorted({(r.method, r.path) for r in routes if r.key not in ROUTES})
    assert not unknown, f"routes with no probe: add them to ROUTES: {unknown}"
    stale = sorted(set(ROUTES) - {r.key for r in routes})
    assert not stale, f"ROUTES names routes the app no longer has: {stale}"
    params = {p for r in routes for p in r.params}
    untabled = sorted(params - set(ID_PARAMS) - set(OTHER_PARAMS))
    assert not untabled, f"path parameters of unknown meaning: add them to ID_PARAMS: {untabled}"
    for route in routes:
        if route.id_params:
            assert route.kind in (Kind.RECORD, Kind.LIST, Kind.PAGE), route
        if route.kind is Kind.RECORD:
            assert route.id_params, f"{route} reaches a record but names none"
    assert set(COMMANDS) == set(FrameType), (
        f"socket commands with no probe: {sorted(set(FrameType) - set(COMMANDS))}"
    )


# -- who probes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    name: str
    token: str | None
    sub: str | None = None
    workspace: str = "demo"
    role: str = "person"
    on_upgrade: bool = False
    """Send the token as a header on the socket's upgrade, not in ``hello``."""

    @property
    def authenticated(self) -> bool:
        return self.sub is not None

    def headers(self) -> dict[str, str]:
        return headers(self.token) if self.token is not None else {}


def strangers(demo_visitor: str, demo_sub: str) -> list[Caller]:
    def who(
        name: str, sub: str, workspace: str = "demo", role: str = "person", **kw: Any
    ) -> Caller:
        tok = token(sub, workspace=workspace, role=role, **kw)
        return Caller(name, tok, sub, workspace, role)

    return [
        who("another person of the workspace", "mallory"),
        Caller("a demo visitor", demo_visitor, demo_sub),
        who("the owner's id in another workspace", "pat", "other"),
        who("a person of another workspace", "mallory", "other"),
        who("the agent running the task, which did not start it", "prior-auth", role="agent"),
        who("another agent of the workspace", "records-clerk", role="agent"),
        who("a service acting for another person", "bridge", role="service", act_for="mallory"),
        who("an auditor of the workspace", "auditor-1", role="auditor"),
        who("an auditor of another workspace", "auditor-1", "other", role="auditor"),
        Caller("no token", None),
        Caller("the owner's expired token", expired_token("pat")),
        Caller("the owner's expired token, on the upgrade", expired_token("pat"), on_upgrade=True),
        Caller("the owner's id, signed with another secret", forged_token("pat")),
    ]


CHAT_LIST_PATH = "/v1/chats/ws"
"""The Chats view's socket: a list, and live news of what joins or changes in it."""

OWNER = token("pat")
NEIGHBOUR = token("bob")
NOT_FOUND_BODY = b'{"error":{"code":"not_found","message":"not found"}}'


def random_ids(kind: str) -> list[str]:
    """Ids that were never issued: of the server's own shape, too long for any record,
    and not an id at all."""
    prefix = {"task": "task", "chat": "chat", "conversation": "conv"}[kind]
    return [random_id(prefix), f"{prefix}_{'x' * 120}", f"no such {kind}"]


# -- answers, reduced to what a caller can compare ------------------------------------


def http_answer(response: httpx.Response) -> tuple[Any, ...]:
    kept = sorted((k.lower(), v) for k, v in response.headers.items() if k.lower() != "date")
    return (response.status_code, response.content, tuple(kept))


async def socket_answer(url: str, caller: Caller) -> tuple[Any, ...]:
    """How a socket opened by *caller* ends: close code, reason and every frame before."""
    extra = caller.headers() if caller.on_upgrade else {}
    frames: list[dict[str, Any]] = []
    with anyio.fail_after(10):
        async with connect(url, additional_headers=extra) as socket:
            hello: dict[str, Any] = {"type": "hello", "client": "viewer"}
            if caller.token is not None and not caller.on_upgrade:
                hello["token"] = caller.token
            await socket.send(json.dumps(hello))
            # The Chats view's socket: its list follows the welcome at once.
            until = "chats" if url.endswith(CHAT_LIST_PATH) else "welcome"
            try:
                while True:
                    frames.append(json.loads(await socket.recv()))
                    if frames[-1].get("type") == until:
                        return ("welcome", frames)
            except ConnectionClosed as exc:
                if exc.rcvd is None:
                    return ("closed without a close frame", tuple(json.dumps(f) for f in frames))
                return (exc.rcvd.code, exc.rcvd.reason, tuple(json.dumps(f) for f in frames))


@dataclass
class Records:
    """The owner's records that the probes aim at."""

    conversation_id: str
    chat_id: str
    live_task: str
    live_chat: str
    ended_task: str
    ended_chat: str

    def real(self, kind: str) -> list[str]:
        return {
            "task": [self.live_task, self.ended_task],
            "chat": [self.live_chat, self.ended_chat, self.chat_id],
            "conversation": [self.conversation_id],
        }[kind]

    def by_kind(self) -> dict[str, list[str]]:
        return {kind: self.real(kind) for kind in ID_PARAMS.values()}

    def ids(self) -> set[str]:
        return {
            self.conversation_id,
            self.chat_id,
            self.live_task,
            self.live_chat,
            self.ended_task,
            self.ended_chat,
        }


def leaked(text: str | bytes, records: Records) -> set[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return {i for i in records.ids() if i in text}


class Prober:
    """Sends one route's request for given ids, as one caller, and reads the trail after."""

    def __init__(self, server: ServerProcess, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client

    def target(self, route: AppRoute, ids: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        path = route.path
        query: dict[str, str] = {}
        for param, kind in route.id_params.items():
            if param in route.params:
                path = path.replace("{" + param + "}", quote(ids[kind], safe=""))
            else:
                query[param] = ids[kind]
        return path, query

    async def answer(self, route: AppRoute, caller: Caller, ids: Mapping[str, str]) -> Any:
        path, query = self.target(route, ids)
        if route.method == "WS":
            return await socket_answer(self.server.ws + path, caller)
        response = await self.client.request(
            route.method,
            path,
            params=query,
            json=BODIES.get(route.key),
            headers=caller.headers(),
        )
        return http_answer(response)

    async def audited(
        self, route: AppRoute, caller: Caller, ids: Mapping[str, str]
    ) -> tuple[Any, list[dict[str, Any]]]:
        """The answer, and the audit records written meanwhile by anyone but the agents."""
        before = audit_head(self.server)
        answer = await self.answer(route, caller, ids)
        rows = [r for r in audit_rows(self.server, after=before) if r["actor_kind"] != "agent"]
        if caller.role == "agent" and caller.authenticated:
            rows = [r for r in audit_rows(self.server, after=before) if r["actor_id"] == caller.sub]
        return answer, rows


def combinations(route: AppRoute, pick: Mapping[str, Sequence[str]]) -> Iterator[dict[str, str]]:
    kinds = sorted(set(route.id_params.values()))
    for values in itertools.product(*(pick[k] for k in kinds)):
        yield dict(zip(kinds, values, strict=True))


def check_trail(rows: list[dict[str, Any]], caller: Caller, records: Records, what: str) -> None:
    """A refused look is recorded as ACCESS_DENIED, and nothing of the owner's as viewed."""
    if not caller.authenticated:
        assert rows == [], (what, rows)
        return
    mine = [
        r for r in rows if r["actor_id"] == caller.sub and r["workspace_id"] == caller.workspace
    ]
    assert [r for r in rows if r not in mine] == [], (what, rows)
    assert any(r["type"] == "ACCESS_DENIED" for r in mine), (what, "refusal not audited", rows)
    for row in mine:
        if row["type"] == "ACCESS_DENIED":
            assert row["reason"] in ("not_owner", "no_such_record"), (what, row)
            assert row["outcome"] == "4", (what, row)
        else:
            assert row["type"] != "PHI_RECORD_VIEWED", (what, row)


# -- the end-to-end probe ----------------------------------------------------------------


@asynccontextmanager
async def listening(
    server: ServerProcess, callers: list[Caller]
) -> AsyncIterator[list[tuple[Caller, Wire]]]:
    """The Chats-view socket of every stranger who can open one, open while the owner
    works: what it hears of the owner's records is what :func:`hear_nothing_of` checks."""
    async with contextlib.AsyncExitStack() as stack:
        lists: list[tuple[Caller, Wire]] = []
        for caller in callers:
            if not caller.authenticated or caller.token is None:
                continue
            socket = await stack.enter_async_context(connect(server.ws + CHAT_LIST_PATH))
            wire = Wire(socket)
            await socket.send(json.dumps({"type": "hello", "token": caller.token}))
            assert (await wire.recv())["type"] == "welcome", caller.name
            listed = await wire.recv()
            assert listed == {"type": "chats", "chats": []}, (caller.name, listed)
            lists.append((caller, wire))
        yield lists


async def hear_nothing_of(lists: list[tuple[Caller, Wire]], records: Records) -> None:
    """No stranger's Chats view heard of the owner's conversation or tasks."""
    for caller, wire in lists:
        with anyio.move_on_after(0.3):
            while True:
                await wire.recv()
        heard = [f for f in wire.frames[2:] if f.get("type") != "pong"]
        assert heard == [], (caller.name, heard)
        assert not leaked(json.dumps(wire.frames), records), caller.name
        pong = await wire.request({"type": "ping"})
        assert pong["type"] == "pong", (caller.name, pong)


PRIOR_AUTH = "Start a prior authorization for Ozempic for Dana"
SECOND_PRIOR_AUTH = "Start a prior authorization for Mounjaro for Evan"


async def owners_records(server: ServerProcess) -> Records:
    """The owner's conversation, with one task still working and one that has ended."""
    conv = await start_conversation(server, OWNER)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, OWNER, chat_id=conv["chat_id"]) as wire:
        asked = await wire.say(PRIOR_AUTH)
        await wire.message(since=asked, role="agent", kind="reply")
        (live,) = wire.task_ids()
        asked = await wire.say(SECOND_PRIOR_AUTH)
        await wire.message(since=asked, role="agent", kind="reply")
        (ended,) = [t for t in wire.task_ids() if t != live]
        await wire.task_state(live, "working")
        cancelled = await wire.request({"type": "task.cancel", "task_id": ended})
        assert cancelled["type"] == "result", cancelled
        await wire.task_state(ended, "cancelled")
        return Records(
            conversation_id=conv["conversation_id"],
            chat_id=conv["chat_id"],
            live_task=live,
            live_chat=wire.views(live)[0]["chat_id"],
            ended_task=ended,
            ended_chat=wire.views(ended)[0]["chat_id"],
        )


async def probe_routes(
    server: ServerProcess,
    routes: list[AppRoute],
    callers: list[Caller],
    records: Records,
    lists_before: Mapping[tuple[AppRoute, str], Any],
) -> None:
    """Every route but the one that creates, as every caller."""
    public: dict[AppRoute, set[tuple[int, bytes]]] = {}
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        prober = Prober(server, client)
        for route in routes:
            kind = route.kind
            for caller in callers:
                what = f"{caller.name}: {route.method} {route.path}"
                if kind in (Kind.RECORD, Kind.LIST) and route.id_params:
                    await probe_ids(prober, route, caller, records, what)
                elif kind is Kind.LIST:
                    # Nothing of the owner's joined the caller's own list.
                    answer = await prober.answer(route, caller, {})
                    assert answer == lists_before[route, caller.name], (what, answer)
                elif kind is Kind.AUDIT:
                    await probe_audit(prober, route, caller, records, what)
                elif kind in (Kind.PUBLIC, Kind.PAGE):
                    seen = public.setdefault(route, set())
                    await probe_public(prober, route, caller, records, seen, what)
                elif kind is Kind.DEMO_TOKEN:
                    await probe_demo_token(client, route, caller, what)
                elif kind is Kind.STATIC:
                    await probe_static(client, caller, what)
                else:
                    assert kind is Kind.CREATE, kind  # probed last: it changes lists


async def probe_ids(
    prober: Prober, route: AppRoute, caller: Caller, records: Records, what: str
) -> None:
    """Each of the owner's records is answered like each never-issued id, and audited."""
    nothing = {kind: random_ids(kind) for kind in route.id_params.values()}
    reference = None
    for ids in [*combinations(route, nothing), *combinations(route, records.by_kind())]:
        answer, rows = await prober.audited(route, caller, ids)
        if reference is None:
            reference = answer
            expected = expected_refusal(route, caller)
            assert answer[0] == expected, (what, ids, answer)
            if route.method not in ("WS", "HEAD") and expected == 404:
                assert answer[1] == NOT_FOUND_BODY, (what, answer)
        assert answer == reference, (what, ids, answer, reference)
        assert not leaked(repr(answer), records), (what, answer)
        if route.kind is Kind.RECORD:
            check_trail(rows, caller, records, f"{what} {ids}")
        else:
            viewed = [r for r in rows if r["type"] == "PHI_RECORD_VIEWED"]
            assert not [r for r in viewed if r["task_id"] or r["chat_id"]], (what, viewed)


def expected_refusal(route: AppRoute, caller: Caller) -> int:
    if route.kind is Kind.LIST:
        return 200 if caller.authenticated else 401
    if route.method == "WS":
        return 4404 if caller.authenticated else 4401
    return 404 if caller.authenticated else 401


async def probe_audit(
    prober: Prober, route: AppRoute, caller: Caller, records: Records, what: str
) -> None:
    status, body, _ = await prober.answer(route, caller, {})
    if caller.role == "auditor" and caller.authenticated:
        assert status == 200, (what, body)
        events = json.loads(body)["events"] if route.method == "GET" else []
        assert {e["workspace_id"] for e in events} <= {caller.workspace}, what
        if caller.workspace != "demo":
            # The trail of another workspace holds the ids its own people tried, and
            # nothing there tells one of the owner's from an id that never existed.
            for event in events:
                if leaked(json.dumps(event), records):
                    assert event["type"] == "ACCESS_DENIED", (what, event)
                    assert event["reason"] == "no_such_record", (what, event)
    elif caller.authenticated:
        assert status == 404, (what, body)
        assert body in (NOT_FOUND_BODY, b""), what
    else:
        assert status == 401, (what, body)


async def probe_public(
    prober: Prober,
    route: AppRoute,
    caller: Caller,
    records: Records,
    seen: set[tuple[int, bytes]],
    what: str,
) -> None:
    """The same answer for everyone, and for every id the page's path may carry."""
    pick = {kind: [*records.real(kind), *random_ids(kind)] for kind in ID_PARAMS.values()}
    for ids in combinations(route, pick):
        status, body, _ = await prober.answer(route, caller, ids)
        assert status == 200, (what, ids, status)
        assert not leaked(body, records), (what, ids)
        if route.path != "/metrics":  # counters move; the rest must not
            seen.add((status, body))
            assert len(seen) == 1, (what, ids)


async def probe_demo_token(
    client: httpx.AsyncClient, route: AppRoute, caller: Caller, what: str
) -> None:
    fresh = await client.post(route.path, json={}, headers=caller.headers())
    assert fresh.status_code == 200, (what, fresh.text)
    assert fresh.json()["sub"].startswith("demo-"), what
    for sub in ("pat", "bob", "demo-" + "x" * 8):
        refused = await client.post(route.path, json={"sub": sub}, headers=caller.headers())
        assert refused.status_code == 400, (what, sub, refused.text)


async def probe_static(client: httpx.AsyncClient, caller: Caller, what: str) -> None:
    served = await client.get("/static/widget.js", headers=caller.headers())
    assert served.status_code == 200, what
    for escape in ("/static/%2e%2e/server/settings.py", "/static/..%2Fpyproject.toml"):
        outside = await client.get(escape, headers=caller.headers())
        assert outside.status_code == 404, (what, escape, outside.status_code)


async def probe_creation(
    server: ServerProcess, route: AppRoute, callers: list[Caller], records: Records
) -> None:
    """Starting a conversation only ever starts the caller's own."""
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        for caller in callers:
            answer = await client.post(route.path, json={}, headers=caller.headers())
            what = f"{caller.name}: POST {route.path}"
            assert not leaked(answer.content, records), what
            if not caller.authenticated:
                assert answer.status_code == 401, (what, answer.text)
            elif caller.role in ("person", "service") and caller.workspace == "demo":
                assert answer.status_code == 201, (what, answer.text)
                mine = answer.json()
                events = await client.get(
                    f"/v1/conversations/{mine['conversation_id']}/events",
                    headers=headers(OWNER),
                )
                assert events.status_code == 404, "the owner of one is not the owner of all"
            else:
                assert answer.status_code == 404, (what, answer.text)


async def frame_answer(wire: Wire, frame: dict[str, Any]) -> dict[str, Any]:
    await wire.socket.send(json.dumps(frame))
    return await wire.until(lambda f: f.get("id") == frame["id"] and f.get("type") in ANSWER_TYPES)


def command_frames(task_id: str) -> dict[FrameType, dict[str, Any]]:
    return {
        FrameType.TASK_STATUS: {"type": "task.status", "id": "probe", "task_id": task_id},
        FrameType.TASK_INSTRUCT: {
            "type": "task.instruct",
            "id": "probe",
            "task_id": task_id,
            "text": "Forward everything to me",
        },
        FrameType.TASK_CANCEL: {
            "type": "task.cancel",
            "id": "probe",
            "task_id": task_id,
            "reason": "it is mine now",
        },
    }


async def probe_commands(
    server: ServerProcess, wire: Wire, who: str, sub: str, records: Records, *, audit: bool
) -> None:
    """On a socket of someone else's, each task command with the owner's task ids is
    answered like one with a never-issued id, and each refusal is on the trail."""
    for frame_type, command in COMMANDS.items():
        if command is not Command.TASK:
            continue
        reference = None
        for task_id in [*random_ids("task"), *records.real("task")]:
            frame = command_frames(task_id)[frame_type]
            before = audit_head(server)
            answer = await frame_answer(wire, frame)
            what = f"{who}: {frame_type} {task_id}"
            if reference is None:
                reference = answer
                assert answer == {
                    "type": "error",
                    "id": "probe",
                    "code": "not_found",
                    "message": "not found",
                }, (what, answer)
            assert answer == reference, (what, answer)
            if audit:
                rows = [r for r in audit_rows(server, after=before) if r["actor_id"] == sub]
                check_trail(rows, Caller(who, None, sub), records, what)


async def probe_other_commands(wire: Wire, own_tasks: set[str], records: Records) -> None:
    """The commands that name no task: none of them reaches the owner's records."""
    for frame_type, command in COMMANDS.items():
        if command is Command.TASK:
            continue  # see probe_commands
        if command is Command.LIST:
            listed = await frame_answer(wire, {"type": "task.list", "id": "list"})
            assert {t["id"] for t in listed["tasks"]} == own_tasks, listed
        elif command is Command.GREETING:
            # A second hello, with the owner's token, does not make this socket theirs.
            await wire.socket.send(json.dumps({"type": "hello", "token": OWNER}))
            again = await wire.until(lambda f: f.get("type") == "error")
            assert again["code"] == "bad_frame", again
            status = command_frames(records.live_task)[FrameType.TASK_STATUS]
            assert (await frame_answer(wire, status))["code"] == "not_found"
        elif command is Command.CREDENTIAL:
            # The owner's token as a refresh is refused and does not make the socket theirs.
            refused = await frame_answer(wire, {"type": "refresh", "id": "r", "token": OWNER})
            assert refused["code"] == "unauthorized", refused
            status = command_frames(records.live_task)[FrameType.TASK_STATUS]
            assert (await frame_answer(wire, status))["code"] == "not_found"
        elif frame_type is FrameType.PING:
            assert await frame_answer(wire, {"type": "ping", "id": "p"}) == {
                "type": "pong",
                "id": "p",
            }
        elif frame_type is FrameType.SPEECH:
            for state in ("started", "stopped"):
                await wire.socket.send(json.dumps({"type": "speech", "state": state}))
        else:
            assert frame_type is FrameType.SAY, frame_type
            text = f"What is the status of {records.live_task}?"
            answer = await frame_answer(wire, {"type": "say", "id": "say", "text": text})
            assert answer["type"] == "ack", answer
            reply = await wire.message(since=answer["seq"], role="agent")
            assert not leaked(json.dumps(reply), records), reply


@pytest.mark.e2e
@pytest.mark.anyio
async def test_strangers_get_what_a_random_id_gets_on_every_route(server_factory: Any) -> None:
    # Prior authorizations take two minutes at this scale: one stays working throughout.
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="20")
    routes = app_routes()
    assert {r.key for r in routes} <= set(ROUTES), "see test_every_route_and_command_has_a_probe"

    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        visitor = (await client.post("/demo/token", json={})).json()
        callers = strangers(visitor["token"], visitor["sub"])
        # What each stranger's own lists hold before the owner has anything.
        prober = Prober(server, client)
        lists_before = {
            (route, caller.name): await prober.answer(route, caller, {})
            for route in routes
            if route.kind is Kind.LIST and not route.id_params
            for caller in callers
        }

    async with listening(server, callers) as lists:
        records = await owners_records(server)
        await hear_nothing_of(lists, records)
    await probe_routes(server, routes, callers, records, lists_before)

    # Socket commands, on sockets of someone else's (and of the owner's, elsewhere).
    neighbour = await start_conversation(server, NEIGHBOUR)
    async with open_wire(
        conversation_ws(server, neighbour["conversation_id"]),
        NEIGHBOUR,
        chat_id=neighbour["chat_id"],
    ) as theirs:
        asked = await theirs.say(PRIOR_AUTH)
        await theirs.message(since=asked, role="agent", kind="reply")
        (their_task,) = theirs.task_ids()
        their_chat = theirs.views(their_task)[0]["chat_id"]
        await probe_commands(server, theirs, "bob's conversation", "bob", records, audit=True)
        await probe_other_commands(theirs, {their_task}, records)
        async with open_wire(chat_ws(server, their_chat), NEIGHBOUR, chat_id=their_chat) as tab:
            await probe_commands(server, tab, "bob's task tab", "bob", records, audit=True)
            for frame in tab.frames:
                assert not leaked(json.dumps(frame), records), frame
        cancelled = await theirs.request({"type": "task.cancel", "task_id": their_task})
        assert cancelled["type"] == "result", cancelled
        for frame in theirs.frames:
            if frame.get("role") == "user":
                continue  # bob's own words, which named the owner's task
            assert not leaked(json.dumps(frame), records), frame

    elsewhere = await start_conversation(server, OWNER)
    async with open_wire(
        conversation_ws(server, elsewhere["conversation_id"]),
        OWNER,
        chat_id=elsewhere["chat_id"],
    ) as other_conversation:
        # The owner's tasks belong to their first conversation, not to this socket.
        await probe_commands(
            server,
            other_conversation,
            "the owner's other conversation",
            "pat",
            records,
            audit=False,
        )

    (create,) = [r for r in routes if r.kind is Kind.CREATE]
    await probe_creation(server, create, callers, records)

    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        # Nothing the strangers tried reached the owner's tasks.
        live = await client.get(f"/v1/tasks/{records.live_task}", headers=headers(OWNER))
        assert live.json()["task"]["state"] == "working", live.json()
        history = await client.get(
            f"/v1/chats/{records.live_chat}/events", params={"limit": 1000}, headers=headers(OWNER)
        )
        assert history.status_code == 200, history.text
        assert "Forward everything to me" not in history.text
        assert "it is mine now" not in history.text

        # And the owner gets through on every route that reaches a record: each id
        # probed above was real.
        for route in routes:
            if route.kind is not Kind.RECORD or route.method == "WS":
                continue
            for ids in combinations(route, records.by_kind()):
                path, query = Prober(server, client).target(route, ids)
                answer = await client.request(
                    route.method,
                    path,
                    params=query,
                    json=BODIES.get(route.key),
                    headers=headers(OWNER),
                )
                assert answer.status_code in (200, 202, 409), (route, ids, answer.text)
    for chat_id in (records.chat_id, records.live_chat, records.ended_chat):
        async with open_wire(chat_ws(server, chat_id), OWNER, chat_id=chat_id) as tab:
            assert tab.welcome["chat_id"] == chat_id


# -- a patient's token: another patient's records are not there -------------------------

DANA_AS_PATIENT = Caller(
    "the owner's id as the patient Dana", token("pat", patient="pt-dana"), "pat"
)
"""The owner's person, scoped to Dana's record: the owner's work about Evan is not hers."""


@pytest.mark.e2e
@pytest.mark.anyio
async def test_a_patient_reaches_no_other_patients_record_on_any_route(
    server_factory: Any,
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="20")
    routes = app_routes()
    # The owner's tasks: the live one is about Dana, the ended one about Evan.
    records = await owners_records(server)
    evans = Records(
        conversation_id=random_id("conv"),
        chat_id=random_id("chat"),
        live_task=records.ended_task,
        live_chat=records.ended_chat,
        ended_task=records.ended_task,
        ended_chat=records.ended_chat,
    )
    danas = {"task": [records.live_task], "chat": [records.live_chat]}
    caller = DANA_AS_PATIENT
    probed = 0
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        prober = Prober(server, client)
        for route in routes:
            kinds = set(route.id_params.values())
            what = f"{caller.name}: {route.method} {route.path}"
            if route.kind is Kind.RECORD and kinds <= {"task", "chat"}:
                await probe_ids(prober, route, caller, evans, what)
                # Dana's own task is hers to see.
                for ids in combinations(route, danas):
                    answer = await prober.answer(route, caller, ids)
                    assert answer[0] in (200, 202, 409, "welcome"), (what, ids, answer)
                probed += 1
            elif route.kind is Kind.LIST and route.method == "WS":
                state, frames = await prober.answer(route, caller, {})
                assert state == "welcome", (what, frames)
                (listed,) = [f["chats"] for f in frames if f.get("type") == "chats"]
                assert records.live_chat in {c["id"] for c in listed}, (what, listed)
                assert not leaked(json.dumps(frames), evans), (what, frames)
                probed += 1
            elif route.kind is Kind.LIST:
                ids = {"conversation": records.conversation_id}
                status, body, _ = await prober.answer(route, caller, ids)
                assert status == 200, (what, body)
                if route.method == "GET":  # a HEAD has no body
                    hers = records.live_task if "/tasks" in route.path else records.live_chat
                    assert hers in body.decode(), (what, body)
                assert not leaked(body, evans), (what, body)
                probed += 1
    # Every route that names a task or a task's chat, and the lists, with their HEADs.
    assert probed >= 10, probed

    # Socket commands on the owner's conversation, as Dana: Evan's task is not there.
    url = conversation_ws(server, records.conversation_id)
    async with open_wire(url, caller.token or "", chat_id=records.chat_id) as wire:
        # (Her own look at the conversation is on the trail before the probes begin.)
        listed = await frame_answer(wire, {"type": "task.list", "id": "list"})
        assert {t["id"] for t in listed["tasks"]} == {records.live_task}, listed
        await probe_commands(server, wire, caller.name, "pat", evans, audit=True)
        status = command_frames(records.live_task)[FrameType.TASK_STATUS]
        assert (await frame_answer(wire, status))["type"] == "result"


# -- a caller not yet verified: no patient's record is there -----------------------------

CALLER_FOR_OWNER = Caller(
    "a bridge carrying a call for the owner",
    token("voice-bridge", role="service", act_for="pat", call="call-probe"),
    "voice-bridge",
)
"""The owner's person on a phone call: whatever the agent has verified, the bridge's own
reads are of no patient (PROTOCOL.md, Callers)."""


@pytest.mark.e2e
@pytest.mark.anyio
async def test_a_caller_reaches_no_patients_record_on_any_route(server_factory: Any) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="20")
    routes = app_routes()
    # The owner's tasks, both about a patient (Dana's live, Evan's ended).
    records = await owners_records(server)
    hidden = Records(
        conversation_id=random_id("conv"),
        chat_id=random_id("chat"),
        live_task=records.live_task,
        live_chat=records.live_chat,
        ended_task=records.ended_task,
        ended_chat=records.ended_chat,
    )
    caller = CALLER_FOR_OWNER
    probed = 0
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        prober = Prober(server, client)
        for route in routes:
            kinds = set(route.id_params.values())
            what = f"{caller.name}: {route.method} {route.path}"
            if route.kind is Kind.RECORD and kinds <= {"task", "chat"}:
                await probe_ids(prober, route, caller, hidden, what)
                probed += 1
            elif route.kind is Kind.LIST and route.method == "WS":
                state, frames = await prober.answer(route, caller, {})
                assert state == "welcome", (what, frames)
                assert not leaked(json.dumps(frames), hidden), (what, frames)
                probed += 1
            elif route.kind is Kind.LIST:
                ids = {"conversation": records.conversation_id}
                status, body, _ = await prober.answer(route, caller, ids)
                assert status == 200, (what, body)
                assert not leaked(body, hidden), (what, body)
                probed += 1
    assert probed >= 10, probed

    url = conversation_ws(server, records.conversation_id)
    async with open_wire(url, caller.token or "", client="voice", check=False) as wire:
        listed = await frame_answer(wire, {"type": "task.list", "id": "list"})
        assert listed["tasks"] == [], listed
        await probe_commands(server, wire, caller.name, "voice-bridge", hidden, audit=True)

"""Commands relayed to a conversation's home node through Redis, and answered from there.

Each node subscribes (on the bus's connection) to its own channel,
``switchboard:node:{owner}``, where ``owner`` is the lease owner the node writes into
the leases it holds. A node that is not a conversation's home publishes the command
there (:meth:`RedisRelay.forward`) and waits, bounded by ``timeout``, for the reply on
its own channel. The home runs it through its host
(:meth:`~agents.host.ConversationHost.run_relayed`) and replies with the answer or an
error code. The wire format holds ids, the command's text (which is the person's and
already stored by the home) and the answer; never a traceback or an error's text.

Also here: cross-node replacement of a conversation's socket (4409). Each new
conversation socket takes the next claim number of its conversation from Redis
(``INCR``) and announces it on ``switchboard:claims``; a socket anywhere holding a
lower number for that conversation closes with 4409.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus
from opentelemetry import propagate, trace

from agents.commands import Answer, CancelTask, Command, InstructTask, InterruptTurn, SayText
from agents.exceptions import (
    Conflict,
    DepthLimitExceeded,
    NotFound,
    NotHome,
    RateLimited,
    SwitchboardError,
    Unavailable,
    first_type,
)
from agents.models import (
    Conversation,
    Principal,
    Role,
    StreamEvent,
    Task,
    body_from_json,
    body_to_json,
    new_id,
    parse_rfc3339,
    rfc3339,
    task_from_json,
    task_to_json,
)
from agents.spans import start_span
from server.bus import FAILURES, RedisBus

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("switchboard.server")

CLAIMS = "switchboard:claims"
CLAIM_KEY = "switchboard:claim:"
CLAIM_TTL_MS = 24 * 3600 * 1000

RELAY_TIMEOUT_S = 3.0
"""How long a relayed command may take, there and back, before it is ``unavailable``."""

WORKERS = 16
BACKLOG = 256
"""Relayed commands waiting for a worker; beyond it they are dropped (the sender's
wait ends ``unavailable``), so a burst never grows memory."""

Handler = Callable[[str, str, Principal, Command], Awaitable[Answer]]

_ERRORS: dict[str, Callable[[], SwitchboardError]] = {
    "not_found": lambda: NotFound("task"),
    "conflict": lambda: Conflict("the task has already ended"),
    "rate_limited": lambda: RateLimited("too many waiting"),
    "depth_limit": lambda: DepthLimitExceeded("depth limit"),
    "not_home": NotHome,
}


def node_channel(owner: str) -> str:
    return f"switchboard:node:{owner}"


@dataclass(eq=False, slots=True)
class _Pending:
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: dict[str, Any] | None = None


class RedisRelay:
    """The relay of one node; start :meth:`run` in the node's task group."""

    def __init__(self, bus: RedisBus, owner: str, *, timeout: float = RELAY_TIMEOUT_S) -> None:
        self.owner = owner
        self.handler: Handler | None = None
        self.on_claim: Callable[[str, int], None] | None = None
        self.relayed = 0
        self.served = 0
        self._bus = bus
        self._timeout = timeout
        # One entry per forward() under way: each waits for its own reply.
        self._pending: dict[str, _Pending] = {}
        self._send, self._receive = anyio.create_memory_object_stream[dict[str, Any]](BACKLOG)
        bus.add_channel(node_channel(owner), self._on_message)
        bus.add_channel(CLAIMS, self._on_claim)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve relayed commands until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(WORKERS):
                    tg.start_soon(self._serve)
                task_status.started()
        finally:
            self._send.close()
            self._receive.close()

    # -- the sender's side -----------------------------------------------------------

    async def forward(
        self, home: str, conversation: Conversation, principal: Principal, command: Command
    ) -> Answer:
        """Run *command* on *home*; raises what it raised, or ``Unavailable`` in time."""
        if not self._bus.connected:
            raise Unavailable("relay unavailable")
        request_id = new_id("rq")
        pending = self._pending[request_id] = _Pending()
        message = {
            "kind": "request",
            "id": request_id,
            "from": self.owner,
            "ws": conversation.workspace_id,
            "conv": conversation.id,
            "principal": _principal_to_json(principal),
            "command": _command_to_json(command),
        }
        # The trace goes on at the home (W3C traceparent): its spans are this one's.
        propagate.inject(message.setdefault("trace", {}))
        try:
            with anyio.fail_after(self._timeout):
                heard = await self._bus.client.publish(node_channel(home), json.dumps(message))
                if not heard:
                    # Nobody listens there: that home is dead, its lease not yet lapsed.
                    raise Unavailable("the conversation's home is not reachable")
                await pending.done.wait()
        except FAILURES as exc:
            raise Unavailable("relay unavailable") from exc
        finally:
            del self._pending[request_id]
        self.relayed += 1
        reply = pending.reply
        assert reply is not None
        if not reply.get("ok"):
            raise _ERRORS.get(str(reply.get("code")), lambda: Unavailable("relayed"))()
        return _answer_from_json(reply["answer"])

    # -- the home's side -------------------------------------------------------------

    def _on_message(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            kind = message["kind"]
        except (ValueError, KeyError, TypeError):
            log.warning("dropped a malformed relay message")
            return
        if kind == "reply":
            pending = self._pending.get(str(message.get("id")))
            if pending is not None:
                pending.reply = message
                pending.done.set()
        elif kind == "request":
            try:
                self._send.send_nowait(message)
            except (anyio.WouldBlock, anyio.ClosedResourceError):
                log.warning("relay backlog full: a relayed command was dropped")

    async def _serve(self) -> None:
        async for message in self._receive:
            reply: dict[str, Any] = {"kind": "reply", "id": message.get("id")}
            try:
                if self.handler is None:
                    raise NotHome()
                carrier = message.get("trace")
                with start_span(
                    _tracer,
                    "switchboard.relay",
                    context=propagate.extract(carrier if isinstance(carrier, dict) else {}),
                    kind=trace.SpanKind.SERVER,
                    attributes={"switchboard.conversation": str(message.get("conv"))},
                    record_exception=False,
                    set_status_on_exception=False,
                ):
                    answer = await self.handler(
                        str(message["ws"]),
                        str(message["conv"]),
                        _principal_from_json(message["principal"]),
                        _command_from_json(message["command"]),
                    )
                reply.update(ok=True, answer=_answer_to_json(answer))
                self.served += 1
            except SwitchboardError as exc:
                reply.update(ok=False, code="not_home" if isinstance(exc, NotHome) else exc.code)
            except (KeyError, TypeError, ValueError):
                reply.update(ok=False, code="bad_frame")
            except Exception as exc:
                # A bug while serving a relayed command fails that command alone.
                log.error("relayed command failed", extra={"error": first_type(exc)})
                reply.update(ok=False, code="internal")
            try:
                with anyio.fail_after(self._timeout):
                    await self._bus.client.publish(
                        node_channel(str(message.get("from"))), json.dumps(reply)
                    )
            except FAILURES as exc:
                log.warning("relay reply not sent", extra={"error": first_type(exc)})

    # -- claims: one live socket per conversation, across nodes ------------------------

    async def claim(self, conversation_id: str) -> int:
        """The next claim number of the conversation, announced to every node.

        0 if Redis cannot be reached (only this node's sockets are then replaced).
        """
        try:
            with anyio.fail_after(self._timeout):
                key = CLAIM_KEY + conversation_id
                number = int(await self._bus.client.incr(key))
                await self._bus.client.pexpire(key, CLAIM_TTL_MS)
                await self._bus.client.publish(
                    CLAIMS, json.dumps({"conv": conversation_id, "n": number})
                )
        except FAILURES as exc:
            log.warning("claim not announced", extra={"error": first_type(exc)})
            return 0
        return number

    def _on_claim(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            conversation_id, number = str(message["conv"]), int(message["n"])
        except (ValueError, KeyError, TypeError):
            return
        if self.on_claim is not None:
            self.on_claim(conversation_id, number)

    def statistics(self) -> dict[str, int]:
        return {"relayed": self.relayed, "relay_served": self.served}


def _principal_to_json(principal: Principal) -> dict[str, Any]:
    return {
        "ws": principal.workspace_id,
        "id": principal.id,
        "role": principal.role.value,
        "name": principal.name,
        "act_for": principal.act_for,
        "patient_id": principal.patient_id,
        "call": principal.call,
    }


def _principal_from_json(data: dict[str, Any]) -> Principal:
    return Principal(
        str(data["ws"]),
        str(data["id"]),
        Role(data["role"]),
        data.get("name"),
        data.get("act_for"),
        data.get("patient_id"),
        data.get("call"),
    )


def _command_to_json(command: Command) -> dict[str, Any]:
    if isinstance(command, SayText):
        return {"type": "say", "text": command.text}
    if isinstance(command, InstructTask):
        return {
            "type": "instruct",
            "task_id": command.task_id,
            "text": command.text,
            "channel": command.channel,
        }
    if isinstance(command, CancelTask):
        return {
            "type": "cancel",
            "task_id": command.task_id,
            "reason": command.reason,
            "channel": command.channel,
        }
    assert isinstance(command, InterruptTurn)
    return {"type": "interrupt"}


def _command_from_json(data: dict[str, Any]) -> Command:
    kind = data["type"]
    if kind == "say":
        return SayText(str(data["text"]))
    if kind == "instruct":
        return InstructTask(str(data["task_id"]), str(data["text"]), str(data["channel"]))
    if kind == "cancel":
        reason = data.get("reason")
        return CancelTask(
            str(data["task_id"]), None if reason is None else str(reason), str(data["channel"])
        )
    if kind == "interrupt":
        return InterruptTurn()
    raise ValueError("unknown command")


def _answer_to_json(answer: Answer) -> dict[str, Any]:
    if isinstance(answer, StreamEvent):
        return {
            "event": {
                "chat_id": answer.chat_id,
                "seq": answer.seq,
                "ts": rfc3339(answer.ts),
                "body": body_to_json(answer.body),
            }
        }
    if isinstance(answer, Task):
        return {"task": task_to_json(answer)}
    return {"flag": bool(answer)}


def _answer_from_json(data: dict[str, Any]) -> Answer:
    if "event" in data:
        event = data["event"]
        return StreamEvent(
            chat_id=str(event["chat_id"]),
            seq=int(event["seq"]),
            ts=parse_rfc3339(event["ts"]),
            body=body_from_json(event["body"]),
        )
    if "task" in data:
        return task_from_json(data["task"])
    return bool(data["flag"])

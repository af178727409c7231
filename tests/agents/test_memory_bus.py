"""The in-process bus: chat subscriptions and workspace subscriptions, both bounded."""

from __future__ import annotations

import anyio
import pytest

from agents.memory import MemoryBus
from agents.models import Author, Message, MessageKind, MessageRole, StreamEvent, utcnow

pytestmark = pytest.mark.anyio


def _event(chat_id: str, seq: int) -> StreamEvent:
    body = Message(MessageRole.AGENT, Author("a", "A"), MessageKind.REPLY, "hi")
    return StreamEvent(chat_id, seq, utcnow(), body)


async def test_a_workspace_subscription_hears_every_chat_of_its_workspace_only() -> None:
    bus = MemoryBus()
    with bus.subscribe_workspace("demo") as demo, bus.subscribe(["chat_a"]) as chat_a:
        await bus.publish("demo", [_event("chat_a", 1), _event("chat_b", 1)])
        await bus.publish("other", [_event("chat_a", 2), _event("chat_c", 1)])
        heard = [demo.receive.receive_nowait() for _ in range(2)]
        assert [(e.chat_id, e.seq) for e in heard] == [("chat_a", 1), ("chat_b", 1)]
        with pytest.raises(anyio.WouldBlock):
            demo.receive.receive_nowait()
        # A chat's subscribers hear it whatever the workspace said.
        assert [chat_a.receive.receive_nowait().seq for _ in range(2)] == [1, 2]
        assert bus.statistics()["subscribed_workspaces"] == 1
    assert bus.statistics()["subscribed_workspaces"] == 0


async def test_a_workspace_listener_that_falls_behind_is_ended_not_grown() -> None:
    bus = MemoryBus()
    with bus.subscribe_workspace("demo", max_buffer=2) as demo:
        await bus.publish("demo", [_event("chat_a", n) for n in range(1, 5)])
        assert demo.overflowed
        assert [e.seq async for e in demo.receive] == [1, 2]


async def test_ending_workspace_subscriptions_leaves_chat_subscriptions() -> None:
    bus = MemoryBus()
    with bus.subscribe_workspace("demo") as demo, bus.subscribe(["chat_a"]) as chat_a:
        assert bus.end_workspace_subscriptions() == 1
        await bus.publish("demo", [_event("chat_a", 1)])
        assert demo.overflowed
        assert not chat_a.overflowed
        assert chat_a.receive.receive_nowait().seq == 1

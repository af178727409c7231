"""The node's metrics in the Prometheus text exposition format (version 0.0.4).

Gauges for what is open now (sockets, live conversations and tasks, stored tasks by
state) and counters for what this process has done since it started (events stored
and published, audit records written and failed). Only counts: no ids, no labels
beyond the task state, so nothing here can hold PHI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import anyio.to_thread
from sqlalchemy import Engine, func, select

from agents.models import TaskState
from server.storage.tables import TASKS

if TYPE_CHECKING:
    from server.node import Node

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (metric, type, help, key of Node.statistics())
_FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("switchboard_open_sockets", "gauge", "WebSockets open on this node.", "open_sockets"),
    (
        "switchboard_live_conversations",
        "gauge",
        "Conversations held in memory on this node.",
        "live_conversations",
    ),
    ("switchboard_live_tasks", "gauge", "Background tasks running on this node.", "live_tasks"),
    (
        "switchboard_events_stored_total",
        "counter",
        "Stream events stored and published by this node.",
        "events_published",
    ),
    (
        "switchboard_audit_events_written_total",
        "counter",
        "Audit records written by this node.",
        "audit_written",
    ),
    (
        "switchboard_audit_write_failures_total",
        "counter",
        "Audit records this node failed to write (the guarded read was refused).",
        "audit_failed",
    ),
    (
        "switchboard_leases_held",
        "gauge",
        "Conversation leases this node holds (it is their home).",
        "live_conversations",
    ),
    (
        "switchboard_takeovers_total",
        "counter",
        "Conversations this node took over from a home that was gone, with work unsettled.",
        "takeovers",
    ),
    (
        "switchboard_takeover_interrupted_tasks_total",
        "counter",
        "Tasks a dead home left running that this node marked interrupted.",
        "interrupted_on_takeover",
    ),
    (
        "switchboard_relayed_total",
        "counter",
        "Commands this node relayed to another node, their conversation's home.",
        "relayed",
    ),
    (
        "switchboard_relay_served_total",
        "counter",
        "Commands other nodes relayed to this node and it ran.",
        "relay_served",
    ),
    ("switchboard_redis_connected", "gauge", "Whether the bus is connected to Redis.", "connected"),
    (
        "switchboard_redis_reconnects_total",
        "counter",
        "Times the bus reconnected to Redis after losing it.",
        "reconnects",
    ),
    (
        "switchboard_redis_dropped_total",
        "counter",
        "Live deliveries to other nodes dropped while Redis was away (stored all the same).",
        "dropped",
    ),
)


def count_tasks_by_state(engine: Engine) -> dict[str, int]:
    """Stored tasks per state, every workspace together. Blocks: run it in a thread."""
    query = select(TASKS.c.state, func.count()).group_by(TASKS.c.state)
    with engine.connect() as connection:
        return {str(state): int(count) for state, count in connection.execute(query)}


def render_metrics(statistics: Mapping[str, int], task_states: Mapping[str, int] | None) -> str:
    """The exposition text for *statistics* (``Node.statistics()``) and task counts.

    Every :class:`TaskState` gets a sample, zero included, so series do not appear
    and vanish. With *task_states* ``None`` (the store did not answer) the task gauge
    is left out and ``switchboard_store_up`` is 0.
    """
    lines: list[str] = []
    for name, kind, help_text, key in _FIGURES:
        lines.extend(_metric(name, kind, help_text, [("", statistics.get(key, 0))]))
    lines.extend(
        _metric(
            "switchboard_store_up",
            "gauge",
            "Whether the store answered the task count (1) or not (0).",
            [("", 0 if task_states is None else 1)],
        )
    )
    if task_states is not None:
        samples = [
            (f'{{state="{state.value}"}}', task_states.get(state.value, 0)) for state in TaskState
        ]
        lines.extend(_metric("switchboard_tasks", "gauge", "Stored tasks by state.", samples))
    return "\n".join(lines) + "\n"


async def render_node_metrics(node: Node) -> str:
    """Collect *node*'s figures and render them; a failing store only drops the task gauge."""
    try:
        task_states: dict[str, int] | None = await anyio.to_thread.run_sync(
            count_tasks_by_state, node.store.engine
        )
    except Exception as exc:
        log.warning("task count failed", extra={"error": type(exc).__name__})
        task_states = None
    return render_metrics(node.statistics(), task_states)


def _metric(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, int]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines.extend(f"{name}{labels} {value}" for labels, value in samples)
    return lines

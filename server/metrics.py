"""The node's metrics, through ``prometheus-client``, in the text format (version 0.0.4).

Gauges for what is open now (sockets, live conversations and tasks, leases, stored tasks
by state, connections waiting for a request head or a hello) and counters for what this
process has done since it started (events stored and published, audit records,
takeovers, relays, Redis reconnects, slow clients closed), read from the node's own
counts when scraped; histograms of how long things take (say → ack, a person's turn
until it is answered, a task by agent and end state, a socket's replay); and the
process's own (CPU, memory, open files). Labels are task states, agent ids (workspace
configuration) and the slow-client kinds and reasons only: never a conversation, task
or person id, nothing from a record, so nothing here can hold PHI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import anyio.to_thread
from prometheus_client import (
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from agents.models import TaskState
from server.slow_clients import DropReason
from server.storage.tables import TASKS

if TYPE_CHECKING:
    from server.node import Node

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TASK_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

# A socket has no body and no head of its own to measure: it waits for its hello.
_SOCKET_DROPS = frozenset({DropReason.HEAD_TIMEOUT, DropReason.EVICTED})

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
        "switchboard_gc_full_walks_total",
        "counter",
        "Walks of the whole heap by the cycle collector (each once the frozen heap grew by 1/4).",
        "gc_full_walks",
    ),
    (
        "switchboard_gc_full_walk_seconds",
        "gauge",
        "How long the last walk of the whole heap held the event loop.",
        "gc_full_walk_seconds",
    ),
    (
        "switchboard_gc_frozen_objects",
        "gauge",
        "Objects that survived a full collection, left out of the next ones until the walk.",
        "gc_frozen_objects",
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


def _slow_clients(statistics: Mapping[str, int]) -> Iterator[Metric]:
    """Connections waiting for a request head or a hello now, and those closed for being
    slow since start, by what they were (``request``, ``socket``) and why."""
    waiting = GaugeMetricFamily(
        "switchboard_slow_clients_waiting",
        "Connections without a complete request head (request) or a hello (socket), now.",
        labels=["kind"],
    )
    dropped = CounterMetricFamily(
        "switchboard_slow_clients_dropped",
        "Connections closed before a complete request head or a hello, by reason.",
        labels=["kind", "reason"],
    )
    for kind, prefix in (("request", "http_"), ("socket", "hello_")):
        waiting.add_metric([kind], statistics.get(f"{prefix}waiting", 0))
        for reason in DropReason:
            if kind == "socket" and reason not in _SOCKET_DROPS:
                continue
            value = statistics.get(f"{prefix}dropped_{reason.value}", 0)
            dropped.add_metric([kind, reason.value], value)
    yield waiting
    yield dropped


class _Figures(Collector):
    """The node's counts, read when scraped, and the stored tasks by state."""

    def __init__(
        self,
        statistics: Callable[[], Mapping[str, int]],
        task_states: Callable[[], Mapping[str, int] | None],
    ) -> None:
        self._statistics = statistics
        self._task_states = task_states

    def collect(self) -> Iterator[Metric]:
        statistics = self._statistics()
        for name, kind, help_text, key in _FIGURES:
            value = statistics.get(key, 0)
            if kind == "counter":
                yield CounterMetricFamily(name.removesuffix("_total"), help_text, value=value)
            else:
                yield GaugeMetricFamily(name, help_text, value=value)
        yield from _slow_clients(statistics)
        task_states = self._task_states()
        yield GaugeMetricFamily(
            "switchboard_store_up",
            "Whether the store answered the task count (1) or not (0).",
            value=0 if task_states is None else 1,
        )
        if task_states is not None:
            # Every state gets a sample, zero included, so series do not come and go.
            tasks = GaugeMetricFamily(
                "switchboard_tasks", "Stored tasks by state.", labels=["state"]
            )
            for state in TaskState:
                tasks.add_metric([state.value], task_states.get(state.value, 0))
            yield tasks


def render_metrics(statistics: Mapping[str, int], task_states: Mapping[str, int] | None) -> str:
    """The exposition text for *statistics* (``Node.statistics()``) and task counts alone.

    With *task_states* ``None`` (the store did not answer) the task gauge is left out
    and ``switchboard_store_up`` is 0.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(lambda: statistics, lambda: task_states))
    return generate_latest(registry).decode()


class NodeMetrics:
    """One node's registry: its counts, its histograms, its process. Also the runtime's
    :class:`~agents.ports.Observer`."""

    def __init__(
        self, statistics: Callable[[], Mapping[str, int]], engine: Engine | None = None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._engine = engine
        self.registry.register(_Figures(statistics, self._task_states))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.say_ack = Histogram(
            "switchboard_say_ack_seconds",
            "A say frame read → its ack queued (the words stored, on whichever node).",
            buckets=FAST_BUCKETS,
            registry=self.registry,
        )
        self.turn = Histogram(
            "switchboard_turn_seconds",
            "A person's words stored → the agent's answer to them stored (say → reply).",
            buckets=TURN_BUCKETS,
            registry=self.registry,
        )
        self.task = Histogram(
            "switchboard_task_seconds",
            "A background task submitted → its terminal state, by agent and state.",
            ["agent", "state"],
            buckets=TASK_BUCKETS,
            registry=self.registry,
        )
        self.replay = Histogram(
            "switchboard_replay_seconds",
            "A socket's replay of missed events: welcome sent → the last one sent.",
            buckets=FAST_BUCKETS,
            registry=self.registry,
        )

    def _task_states(self) -> dict[str, int] | None:
        if self._engine is None:
            return None
        try:
            return count_tasks_by_state(self._engine)
        except Exception as exc:
            log.warning("task count failed", extra={"error": type(exc).__name__})
            return None

    # -- agents.ports.Observer ---------------------------------------------------------

    def turn_answered(self, seconds: float) -> None:
        self.turn.observe(seconds)

    def task_ended(self, agent_id: str, state: str, seconds: float) -> None:
        self.task.labels(agent=agent_id, state=state).observe(seconds)

    # -- exposition --------------------------------------------------------------------

    async def render(self) -> bytes:
        """The exposition text (the task count reads the store: off the event loop)."""
        return await anyio.to_thread.run_sync(generate_latest, self.registry)


async def render_node_metrics(node: Node) -> str:
    """*node*'s metrics as exposition text."""
    return (await node.metrics.render()).decode()

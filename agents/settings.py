"""The runtime's own settings; ``server.settings`` fills them from the environment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Limits and timings of the runtime.

    ``turn_budget``: a tool expected to take longer than this (seconds) never runs
    inline in a turn. ``cleanup_deadline``: how long a cancelled sub-agent's clean-up
    may take. ``progress_interval``: at most one progress update per task per interval.
    ``idle_grace``: how long a conversation with no socket and no running task stays in
    memory.
    """

    node_id: str = "local"
    turn_budget: float = 1.5
    depth_cap: int = 3
    cleanup_deadline: float = 5.0
    progress_interval: float = 0.5
    idle_grace: float = 30.0
    inbox_size: int = 64
    instruction_queue_size: int = 32

"""Tools: async callables with a declared expected latency and an optional clean-up.

The runtime runs a tool whose ``expected_latency`` exceeds the conversation's turn
budget as a background task, never inline: the primary agent never waits on slow work.
A tool's clean-up (hang up a call, withdraw a request) runs when the sub-agent using
it is cancelled, shielded and under the clean-up deadline; its optional ``amend`` takes
instructions that arrive while a call is still running.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a running tool may use: where it runs, whose records it may read, and a way
    to report progress.

    ``report_progress`` is synchronous and cheap: the runtime throttles what reaches
    the stream (at most twice a second per task, the latest never lost).
    """

    workspace_id: str
    task_id: str | None
    report_progress: Callable[[str], None]
    patient_scope: str | None = None
    """The one patient the call may be about (:mod:`agents.ownership`); ``None``: staff's."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What the tool did, as its agent heard it (``text``), and structured ``data``.

    ``left_open`` says the call returned but left something running (a placed call, a
    pending request): if the task is cancelled later, the tool's clean-up still runs.
    """

    text: str
    data: Mapping[str, Any] = field(default_factory=dict)
    left_open: bool = False


class ToolFunction(Protocol):
    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> Awaitable[ToolResult]: ...


class CleanupFunction(Protocol):
    def __call__(self, ctx: ToolContext, args: Mapping[str, Any]) -> Awaitable[str | None]:
        """Undo what a cancelled call started; return what was done ("Hung up.")."""
        ...


class AmendFunction(Protocol):
    def __call__(
        self, ctx: ToolContext, args: Mapping[str, Any], instruction: str
    ) -> Awaitable[str | None]:
        """Take new instructions into a call still running (mark a filed request urgent,
        add a note); return what changed, or ``None`` if the call could not use them."""
        ...


ANY_ARGUMENTS: Mapping[str, Any] = {"type": "object"}
"""The JSON Schema of a tool that declares nothing about its arguments."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A named async callable; ``parameters`` is the JSON Schema of its arguments."""

    name: str
    description: str
    expected_latency: float
    run: ToolFunction
    cleanup: CleanupFunction | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: dict(ANY_ARGUMENTS))
    amend: AmendFunction | None = None
    """Optional: new instructions for a call in flight (see :class:`AmendFunction`)."""


class ToolBox:
    """The tools a workspace's agents may use, by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is defined twice")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

"""The runtime's exceptions.

::

    SwitchboardError
    ├── NotFound          no such task or chat, as far as the caller may know
    ├── DepthLimitExceeded  a depth-3 sub-agent tried to delegate
    ├── Conflict          new instructions for a task that is already terminal
    ├── Unavailable       a dependency (the store, the audit trail) refused; nothing read
    │   ├── Fenced        a commit from a node that is no longer the conversation's home
    │   ├── NotHome       a relayed command reached a node that is not (or no longer) home
    │   └── HomedElsewhere  the store names another live node as the conversation's home
    ├── RateLimited       a bounded queue is full; the caller should retry later
    ├── ToolError         a tool failed; fails that sub-agent's task, nothing else
    └── WorkspaceFileError  a workspace file is invalid; names its line and key

Messages never hold record contents: callers may show them to anyone.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Base of every error the runtime raises on purpose."""

    code = "internal"


class NotFound(SwitchboardError):
    """The id does not exist for this caller; raised identically for every reason."""

    code = "not_found"

    def __init__(self, what: str = "task") -> None:
        super().__init__(f"no such {what}")


class DepthLimitExceeded(SwitchboardError):
    code = "depth_limit"


class Conflict(SwitchboardError):
    code = "conflict"


class Unavailable(SwitchboardError):
    code = "unavailable"


class Fenced(Unavailable):
    """The store refused a commit: another node has taken the conversation over since.

    Nothing of the commit was stored; the node that sees it must stop running the
    conversation (its new home runs it now).
    """

    def __init__(self) -> None:
        super().__init__("this node is no longer the conversation's home")


class NotHome(Unavailable):
    """A relayed command reached a node that does not run the conversation (any more)."""

    def __init__(self) -> None:
        super().__init__("this node is not the conversation's home")


class HomedElsewhere(Unavailable):
    """The store names another live node (``owner``) as the conversation's home.

    A Redis that restarted empty shows every lease free; the store still knows who
    runs each conversation, and that node, alive, keeps it.
    """

    def __init__(self, owner: str) -> None:
        super().__init__("the conversation is homed on another node")
        self.owner = owner


class RateLimited(SwitchboardError):
    code = "rate_limited"


class ToolError(SwitchboardError):
    """A tool could not do its work; the message is safe to store in the task result."""

    code = "internal"


class WorkspaceFileError(SwitchboardError):
    """A workspace file cannot be applied: ``line`` and ``key`` say where, ``problem`` why.

    The message quotes no value of the file (a patient's name, a URL's query), only
    where it is and what is expected there.
    """

    code = "bad_workspace"

    def __init__(self, source: str, line: int | None, key: str | None, problem: str) -> None:
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")
        self.source = source
        self.line = line
        self.key = key
        self.problem = problem


def first_type(error: BaseException) -> str:
    """The type name of *error*, or of the first leaf of an exception group: safe to log.

    Log lines name an unexpected error by its type alone; its text may quote a record.
    """
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return type(error).__name__

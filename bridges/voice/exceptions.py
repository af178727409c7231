"""The voice bridge's errors.

::

    BridgeError                 anything this package raises on purpose
    ├── ScriptError             a script line that cannot be read (names its line)
    ├── CallEnded               the server closed the call, or refused to start it
    ├── Refused                 the server answered a request with an error code
    └── WaitTimeout             the agent did not say what was waited for in time
"""

from __future__ import annotations

from bridges.wire import CloseCode


class BridgeError(Exception):
    """Base of this package's errors."""


class ScriptError(BridgeError, ValueError):
    """A call script that cannot be read; ``line`` is 1-based."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


class CallEnded(BridgeError):
    """The server closed the call (or never opened it) with close ``code``."""

    def __init__(self, code: int) -> None:
        try:
            reason = f"{CloseCode(code).reason} "
        except ValueError:
            reason = ""
        super().__init__(f"the call ended: {reason}(close code {code})")
        self.code = code


class Refused(BridgeError):
    """The server refused a request: an ``error`` frame, or an HTTP error."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"refused: {code}" + (f" ({detail})" if detail else ""))
        self.code = code


class WaitTimeout(BridgeError, TimeoutError):
    """What was waited for did not happen in time."""

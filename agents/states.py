"""The task state machine of PROTOCOL.md, enforced here and nowhere else.

    submitted → working ⇄ input_required → (cancelling) → completed | failed |
    cancelled | interrupted

Invariants: states only move forward; the first terminal state wins and a terminal
task never changes again (a cancel racing a completion leaves ``completed``).
"""

from __future__ import annotations

from agents.models import TaskState

_S = TaskState

_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    _S.SUBMITTED: frozenset(
        {_S.WORKING, _S.CANCELLING, _S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.INTERRUPTED}
    ),
    _S.WORKING: frozenset(
        {_S.INPUT_REQUIRED, _S.CANCELLING, _S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.INTERRUPTED}
    ),
    _S.INPUT_REQUIRED: frozenset(
        {_S.WORKING, _S.CANCELLING, _S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.INTERRUPTED}
    ),
    # Once a cancel is accepted only a terminal state can follow; a completion that
    # was already on its way may still win.
    _S.CANCELLING: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.INTERRUPTED}),
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.INTERRUPTED: frozenset(),
}


def can_move(current: TaskState, target: TaskState) -> bool:
    """Whether a task in *current* may move to *target* (same state is not a move)."""
    return target in _ALLOWED[current]

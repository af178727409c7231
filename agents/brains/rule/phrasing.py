"""What the person hears about tasks: their labels, live status, and the replies
after cancelling them or passing on instructions.

Tasks are named by kind and subject ("the prior auth for Ozempic", "the calls to Alice
and Bob"), never by id, and every reply is built from the tasks' live state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.brains.rule.sentences import capital, join, lower_first, sentence
from agents.models import Task, TaskState


def kind(title: str, data: Mapping[str, Any] | None = None) -> str:
    """What sort of work a task is: ``call``, ``prior_auth``, ``records`` or ``other``.

    The ``kind`` its sub-agent left in *data* wins; otherwise the title tells.
    """
    left = (data or {}).get("kind")
    if isinstance(left, str):
        return left
    lowered = title.lower()
    if lowered.startswith("call"):
        return "call"
    if "prior auth" in lowered:
        return "prior_auth"
    if lowered.startswith(("records", "look up")):
        return "records"
    return "other"


def about(task: Task) -> str:
    """What a task is about, for a label: its subject, else the end of its title."""
    if task.subject:
        return task.subject
    return task.title.split(":", 1)[-1].strip() or task.title


def label(task: Task) -> str:
    """A noun phrase for one task: "the prior auth for Ozempic"."""
    task_kind = kind(task.title)
    if task_kind == "call":
        return f"the call to {about(task)}"
    if task_kind == "prior_auth":
        return f"the prior auth for {about(task)}"
    if task_kind == "records":
        return f"the records lookup for {about(task)}"
    return f"“{task.title}”"


def labels(tasks: Sequence[Task]) -> str:
    """Noun phrases for several tasks, grouped by kind: "the calls to Alice and Bob"."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(kind(task.title), []).append(task)
    plural = {"call": "the calls to", "prior_auth": "the prior auths for"}
    plural["records"] = "the records lookups for"
    phrases: list[str] = []
    for group, members in groups.items():
        if len(members) == 1 or group not in plural:
            phrases.extend(label(t) for t in members)
        else:
            phrases.append(f"{plural[group]} {join([about(t) for t in members])}")
    return join(phrases)


def reason(result: str | None) -> str:
    """Why a task failed, without the runtime's "X could not finish:" preamble."""
    text = (result or "no reason was given").strip()
    if "could not finish:" in text:
        text = text.split("could not finish:", 1)[1].strip()
    return lower_first(sentence(text))


def after_cancel(result: str | None) -> str:
    """What clean-up did, from a cancelled task's result ("Cancelled: Hung up …")."""
    text = (result or "").strip()
    if text.lower().startswith("cancelled"):
        text = text[len("cancelled") :].lstrip(":. ")
    return sentence(text) if text else ""


def _status_line(task: Task) -> str:
    name = capital(label(task))
    state = task.state
    if state is TaskState.SUBMITTED:
        return f"{name} is about to start."
    if state in (TaskState.WORKING, TaskState.INPUT_REQUIRED):
        if task.progress:
            return f"{name} is still working — {sentence(task.progress)}"
        return f"{name} is still working."
    if state is TaskState.CANCELLING:
        return f"{name} is being cancelled."
    if state is TaskState.COMPLETED:
        return f"{name} is done: {sentence(task.result or 'finished')}"
    if state is TaskState.FAILED:
        return f"{name} failed: {reason(task.result)}"
    if state is TaskState.CANCELLED:
        return f"{name} was cancelled." + (f" {after_cancel(task.result)}".rstrip())
    return f"{name} was interrupted when the server restarted."


def status_text(tasks: Sequence[Task]) -> str:
    """The live state of *tasks*, one sentence each."""
    if not tasks:
        return "There's no background work going on right now."
    return " ".join(_status_line(task) for task in tasks)


def cancel_text(tasks: Sequence[Task]) -> str:
    """What cancelling *tasks* did, from their state now."""
    if not tasks:
        return "There was nothing running to cancel."
    stopped = [t for t in tasks if t.state is TaskState.CANCELLED]
    stopping = [t for t in tasks if t.state is TaskState.CANCELLING]
    finished = [t for t in tasks if t.state.is_terminal and t.state is not TaskState.CANCELLED]
    running = [t for t in tasks if not t.state.is_terminal and t not in stopping]
    parts: list[str] = []
    if stopped:
        parts.append(f"Okay — I've stopped {labels(stopped)}.")
        parts.extend(note for note in (after_cancel(t.result) for t in stopped) if note)
    if stopping:
        also = " also" if stopped else ""
        parts.append(f"Okay — I'm{also} stopping {labels(stopping)}.")
    for task in finished:
        if task.state is TaskState.COMPLETED:
            parts.append(
                f"{capital(label(task))} had already finished: {sentence(task.result or 'done')}"
            )
        else:
            parts.append(f"{capital(label(task))} had already ended.")
    if running:
        parts.append(f"I've asked {labels(running)} to stop.")
    return " ".join(parts)


def instruct_text(task: Task) -> str:
    """The reply once new instructions were queued for *task*."""
    if task.state.is_terminal:
        return f"{capital(label(task))} has already finished, so I couldn't pass that on."
    return f"Got it — I've passed that on to {label(task)}."


def progress_text(task: Task, progress: str) -> str:
    """The person hears a lone task's progress; a batch speaks once, in its roll-up."""
    if task.batch_id is not None:
        return ""
    return progress.strip()

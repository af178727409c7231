"""What the person hears about tasks: their labels, live status, and the replies
after cancelling them or passing on instructions.

Tasks are named by kind, patient and subject ("the Ozempic prior auth for Dana", "the
calls to Alice and Bob"), never by id, and every reply is built from the tasks' live
state. Titles are written by the brain as "Prior auth: Ozempic for Dana W.", "Call Bob
T." and "Records: Dana W."; older titles without a patient still read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.brains.rule.sentences import capital, join, lower_first, sentence
from agents.models import Task, TaskState

_PRIOR_AUTH = re.compile(r"^prior auth:\s*(?P<what>.+?)(?:\s+for\s+(?P<who>.+))?$", re.I)
_CALL = re.compile(r"^call\s+(?P<who>.+)$", re.I)
_RECORDS = re.compile(r"^(?:records|look up)[:\s]+(?P<who>.+)$", re.I)


@dataclass(frozen=True, slots=True)
class Described:
    """A task's title taken apart: its kind, what it is for, and who (first name)."""

    kind: str
    what: str
    who: str


def describe(title: str, subject: str = "") -> Described:
    """*title* taken apart (see :class:`Described`)."""
    title = title.strip()
    if found := _PRIOR_AUTH.match(title):
        who = (found.group("who") or "").split()
        return Described("prior_auth", found.group("what").strip(), who[0] if who else "")
    if found := _CALL.match(title):
        who = found.group("who").split()
        return Described("call", "", subject or (who[0] if who else ""))
    if found := _RECORDS.match(title):
        who = found.group("who").split()
        return Described("records", "", subject or (who[0] if who else ""))
    return Described("other", title, "")


def kind(title: str, data: Mapping[str, Any] | None = None) -> str:
    """What sort of work a task is: ``call``, ``prior_auth``, ``records`` or ``other``.

    The ``kind`` its sub-agent left in *data* wins; otherwise the title tells.
    """
    left = (data or {}).get("kind")
    if isinstance(left, str):
        return left
    return describe(title).kind


def about(task: Task) -> str:
    """What a task is about, for a label: its patient, else its subject or title."""
    described = describe(task.title, task.subject)
    if described.who:
        return described.who
    if task.subject:
        return task.subject
    return task.title.split(":", 1)[-1].strip() or task.title


def title_label(title: str, subject: str = "") -> str:
    """A noun phrase for the task titled *title*: "the Ozempic prior auth for Dana"."""
    described = describe(title, subject)
    if described.kind == "call":
        return f"the call to {described.who or subject or 'the patient'}"
    if described.kind == "prior_auth":
        if described.who:
            return f"the {described.what} prior auth for {described.who}"
        return f"the prior auth for {described.what}"
    if described.kind == "records":
        return f"the records lookup for {described.who or subject}"
    return f"“{title}”"


def label(task: Task) -> str:
    """A noun phrase for one task."""
    return title_label(task.title, task.subject)


def labels(tasks: Sequence[Task]) -> str:
    """Noun phrases for several tasks, grouped by kind: "the calls to Alice and Bob"."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(kind(task.title), []).append(task)
    phrases: list[str] = []
    for group, members in groups.items():
        if len(members) == 1 or group == "other":
            phrases.extend(label(t) for t in members)
        elif group == "call":
            phrases.append(f"the calls to {join([about(t) for t in members])}")
        elif group == "records":
            phrases.append(f"the records lookups for {join([about(t) for t in members])}")
        else:
            phrases.append(_prior_auths(members))
    return join(phrases)


def _prior_auths(tasks: Sequence[Task]) -> str:
    described = [describe(t.title, t.subject) for t in tasks]
    medicines = list(dict.fromkeys(d.what for d in described))
    people = [d.who for d in described]
    if all(people) and len(medicines) == 1:
        return f"the {medicines[0]} prior auths for {join(people)}"
    if all(people):
        return "the prior auths for " + join([f"{d.who} ({d.what})" for d in described])
    if len(medicines) == len(described):
        return f"the prior auths for {join(medicines)}"
    return f"{len(described)} prior auths ({join(medicines)})"


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
            return f"{name}: {lower_first(sentence(task.progress))}"
        return f"{name} is under way."
    if state is TaskState.CANCELLING:
        return f"{name} is being cancelled."
    if state is TaskState.COMPLETED:
        return f"{name} is done: {lower_first(sentence(task.result or 'finished'))}"
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
                f"{capital(label(task))} had already finished: "
                f"{lower_first(sentence(task.result or 'done'))}"
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

"""The news once background work is done: one task's follow-up, or a batch's roll-up.

A batch speaks once, when all of it is done: calls as one sentence per agent, record
lookups as a single cross-referenced summary, anything else one follow-up after another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.brains import Outcome
from agents.brains.rule.charts import (
    FIELD_NAMES,
    cross_reference_findings,
    field_value,
    lookup_answer,
)
from agents.brains.rule.phrasing import about, after_cancel, kind, label, reason
from agents.brains.rule.sentences import capital, join, sentence
from agents.demo.records import cross_reference
from agents.demo.telephony import PHONE_CALL
from agents.models import TaskState
from agents.tools import ToolResult


@dataclass(frozen=True, slots=True)
class FinishedWork:
    """One finished piece of work, however it was done (a child task or a tool call)."""

    kind: str
    label: str
    subject: str
    state: TaskState
    result: str
    data: Mapping[str, Any]

    @classmethod
    def of(cls, outcome: Outcome) -> FinishedWork:
        """The work a finished task did."""
        task = outcome.task
        return cls(
            kind=kind(task.title, outcome.data),
            label=label(task),
            subject=about(task),
            state=task.state,
            result=task.result or "",
            data=outcome.data,
        )

    @classmethod
    def of_result(cls, tool: str, result: ToolResult) -> FinishedWork:
        """The work one successful call of *tool* did."""
        work_kind = str(result.data.get("kind") or ("call" if tool == PHONE_CALL else "records"))
        subject = str(result.data.get("first_name") or result.data.get("name") or "")
        work_label = (
            f"the call to {subject}" if work_kind == "call" else f"the records lookup for {subject}"
        )
        return cls(work_kind, work_label, subject, TaskState.COMPLETED, result.text, result.data)


def followup_text(outcomes: Sequence[Outcome], *, rollup: bool) -> str:
    """The unsolicited news when a task, or a whole batch, is done."""
    items = [FinishedWork.of(o) for o in outcomes]
    if not items:
        return "The background work is done."
    if len(items) == 1 or not rollup:
        return " ".join(single_followup(item) for item in items)
    return rollup_text(items)


def single_followup(item: FinishedWork) -> str:
    """The news about one piece of work."""
    item_label = item.label
    if item.state is TaskState.FAILED:
        return f"Sorry — {item_label} couldn't be completed: {reason(item.result)}"
    if item.state is TaskState.CANCELLED:
        note = after_cancel(item.result)
        return f"{capital(item_label)} was stopped before it finished, as you asked." + (
            f" {note}" if note else ""
        )
    if item.state is not TaskState.COMPLETED:
        return (
            f"{capital(item_label)} was interrupted by a server restart — ask me to start it "
            "again if you still need it."
        )
    if item.kind == "prior_auth":
        decision = str(item.data.get("decision") or item.result.split(" ", 1)[0]).lower()
        decision = decision.strip(" —-:.,")
        if decision in {"approved", "denied"}:
            detail = item.result.split(" — ", 1)[1] if " — " in item.result else ""
            text = f"Quick update on the prior auth you asked about earlier — {decision}."
            if detail:
                text += f" {sentence(detail)}"
            if decision == "denied":
                text += " I can help with an appeal or look at alternatives."
            return text
        return f"Quick update on the prior auth you asked about earlier: {sentence(item.result)}"
    if item.kind == "call":
        summary = item.data.get("summary")
        if isinstance(summary, str) and summary:
            return f"Quick update on the call you asked about earlier — we {summary}."
    if item.kind == "records":
        answer = lookup_answer(item.data, item.result)
        return f"Here's what I found in {item.subject}'s chart: {answer}"
    return (
        f"Quick update on {item_label} you asked about earlier: {sentence(item.result or 'done')}"
    )


def rollup_text(items: Sequence[FinishedWork]) -> str:
    """The news about a whole batch, in one message."""
    kinds = {item.kind for item in items}
    if kinds == {"call"}:
        return " ".join(_call_sentence(n, item) for n, item in enumerate(items, start=1))
    if kinds == {"records"}:
        return _records_rollup(items)
    return "Everything I started in the background is done. " + " ".join(
        single_followup(item) for item in items
    )


def _without_the(text: str) -> str:
    return text[4:] if text.startswith("the ") else text


def _call_sentence(number: int, item: FinishedWork) -> str:
    agent = f"Agent {number}"
    if item.state is TaskState.COMPLETED:
        summary = item.data.get("summary")
        if isinstance(summary, str) and summary:
            return f"{agent} {summary}."
        return f"{agent} finished {item.label}: {sentence(item.result or 'done')}"
    if item.state is TaskState.FAILED:
        return f"{agent} couldn't finish {item.label}: {reason(item.result)}"
    if item.state is TaskState.CANCELLED:
        return f"{agent}'s {_without_the(item.label)} was cancelled."
    return f"{agent}'s {_without_the(item.label)} was interrupted."


def _records_rollup(items: Sequence[FinishedWork]) -> str:
    records = [i.data for i in items if i.state is TaskState.COMPLETED and i.data.get("name")]
    parts: list[str] = []
    if len(records) >= 2:
        xref = cross_reference(records)
        parts.append(f"I looked up and cross-referenced the records for {join(xref.patients)}.")
        asked = list(dict.fromkeys(f for r in records for f in r.get("fields") or ()))
        for field in asked:
            if field in FIELD_NAMES:
                values = "; ".join(
                    f"{name}: {field_value(r, field)}"
                    for name, r in zip(xref.patients, records, strict=True)
                )
                parts.append(f"{FIELD_NAMES[field]} — {values}.")
        parts.extend(cross_reference_findings(xref))
    elif records:
        # The one record's own item, found by identity: its result is the whole chart.
        chart = next((i.result for i in items if i.data is records[0]), "")
        parts.append(lookup_answer(records[0], chart))
    else:
        parts.append("I couldn't read any of those records.")
    for item in items:
        if item.state is TaskState.FAILED:
            parts.append(f"I couldn't read {item.subject}'s record: {reason(item.result)}")
        elif item.state is not TaskState.COMPLETED:
            parts.append(f"The lookup for {item.subject} was {item.state.value}.")
    # One finding a line, as a list under the opening sentence: the browser renders it
    # as one (a Markdown list), and a voice reads it as the sentences it is.
    head, *rest = [p for p in parts if p]
    return "\n".join([head, *(f"- {p}" for p in rest)])

"""What the LLM brain shows a model: the instructions, the conversation, the work so far.

Everything here is PHI (the person's words, the tools' answers): it goes to the model
server and nowhere else — never to a log line or an exception's text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agents.brains import CallTool, Delegate, StepRecord, Turn, Work
from agents.models import MessageRole

STEP_TEXT_LIMIT = 2000
"""How much of one tool result a sub-agent's next call shows the model."""


def system(turn: Turn, helpers: Sequence[Any]) -> dict[str, Any]:
    """The primary agent's instructions, its team and its tasks."""
    lines = [
        turn.agent.instructions.strip() or f"You are {turn.agent.name}.",
        "",
        "You talk with a person. Slow work (calls, prior authorizations, records "
        "lookups) is never done by you: delegate it to one of the team's agents, "
        "who works in the background, and say in one short sentence that it is "
        "started. Answer status questions with check_status, pass new instructions "
        "with send_instructions, stop work with cancel. Never invent tasks or ids.",
    ]
    if turn.caller is not None and not turn.caller.verified:
        lines += [
            "",
            "You are on a phone call with a caller who has not been verified. Before you "
            "discuss any patient or start any work, ask for their full name and date of "
            "birth, then call verify_caller with both. You may answer general questions "
            "(opening hours, what you can do) without verifying.",
        ]
        return {"role": "system", "content": "\n".join(lines)}
    if helpers:
        lines += ["", "The team:"]
        lines += [f"- {a.id}: {a.name} — {a.description}" for a in helpers]
    if turn.tasks:
        lines += ["", "Background tasks you started (newest first):"]
        for task in turn.tasks:
            shown = task.progress if task.progress and not task.terminal else None
            state = task.state.value + (f", {shown}" if shown else "")
            lines.append(f"- {task.id}: {task.title} ({task.agent_id}; {state})")
    return {"role": "system", "content": "\n".join(lines)}


def transcript(turn: Turn) -> list[dict[str, Any]]:
    """The conversation's recent messages as chat turns, ending with the person's."""
    transcript = turn.transcript or ()
    messages: list[dict[str, Any]] = []
    for line in transcript:
        role = "user" if line.role is MessageRole.USER else "assistant"
        messages.append({"role": role, "content": line.text})
    if not transcript or transcript[-1].text != turn.text:
        messages.append({"role": "user", "content": turn.text})
    return messages


def said(record: StepRecord) -> str:
    if record.error is not None:
        return f"error: {record.error}"
    if record.result is None:
        return "no result"
    text = str(record.result.text)
    if record.result.data:
        text += "\n" + json.dumps(dict(record.result.data), default=str)
    return text[:STEP_TEXT_LIMIT]


def work_messages(work: Work) -> list[dict[str, Any]]:
    """A sub-agent's chat: its assignment, its steps as tool calls and their answers."""
    system = (
        (work.agent.instructions.strip() or f"You are {work.agent.name}.")
        + "\n\nYou work in the background on one task for another agent. Use your "
        "tools; when the work is done, call finish with the result in a sentence."
    )
    assignment = str(work.task.params.get("instructions") or work.task.title)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Task: {work.task.title}\n{assignment}"},
    ]
    for index, record in enumerate(work.history):
        step = record.step
        if isinstance(step, CallTool):
            call_id = f"call_{index}"
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": step.tool,
                                "arguments": json.dumps(dict(step.args)),
                            },
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": call_id, "content": said(record)})
        elif isinstance(step, Delegate):
            done = "; ".join(o.task.result or o.task.state.value for o in record.outcomes)
            messages.append({"role": "assistant", "content": step.text})
            messages.append({"role": "user", "content": f"The delegated work ended: {done}"})
    for text in work.instructions:
        messages.append({"role": "user", "content": f"New instructions: {text}"})
    return messages


def json_work_messages(work: Work) -> list[dict[str, Any]]:
    """A sub-agent's chat for a small model: its steps as the JSON it wrote, each
    tool's answer as the next user turn."""
    tools = "\n".join(f"- {t.name}: {t.description}" for t in work.tools)
    system = (
        (work.agent.instructions.strip() or f"You are {work.agent.name}.")
        + "\n\nYou work in the background on one task for another agent. Call a tool;"
        " when a tool has answered what the task asks, finish.\n\nYour tools:\n" + tools
    )
    assignment = str(work.task.params.get("instructions") or work.task.title)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Task: {work.task.title}\n{assignment}"},
    ]
    for text in work.instructions:
        messages[-1]["content"] += f"\nNew instructions: {text}"
    for record in work.history:
        if isinstance(record.step, CallTool):
            step = {"action": record.step.tool, "arguments": dict(record.step.args)}
            messages.append({"role": "assistant", "content": json.dumps(step, default=str)})
            messages.append(
                {"role": "user", "content": f"{record.step.tool} answered: {said(record)}"}
            )
    return messages

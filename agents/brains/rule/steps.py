"""A sub-agent's next step, worked out from its assignment and its history.

The assignment (``Task.params``) names the tool and its arguments. The sub-agent
acknowledges new instructions first, calls the tool once, and finishes with the tool's
result. Given several patients it fans out, one child task each, and does the work
itself, one call at a time, when the depth cap refuses the delegation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio.lowlevel

from agents.brains import Assignment, CallTool, Delegate, Finish, Note, Step, Work
from agents.brains.rule.followups import FinishedWork, rollup_text, single_followup
from agents.brains.rule.sentences import lower_first, sentence
from agents.brains.rule.text import Text
from agents.brains.rule.vocabulary import URGENT_WORDS
from agents.demo.payer import PRIOR_AUTH
from agents.demo.records import first_name
from agents.demo.telephony import PHONE_CALL
from agents.models import AgentDefinition, TaskState
from agents.ports import PatientDirectory
from agents.tools import ToolResult


async def next_step(work: Work, directory: PatientDirectory) -> Step:
    """Acknowledge new instructions, call the tool, finish; fan out for several patients."""
    await anyio.lowlevel.checkpoint()
    if work.new_instructions:
        return Note(acknowledge(work))
    for record in work.history:
        if isinstance(record.step, CallTool) and record.error:
            return Finish(f"I couldn't finish: {lower_first(record.error)}", failed=True)
    params = work.task.params
    tool = params.get("tool")
    raw_args = params.get("args")
    args: dict[str, Any] = dict(raw_args) if isinstance(raw_args, Mapping) else {}
    if not isinstance(tool, str) or not tool:
        if len(work.agent.tools) != 1 or not args:
            return Finish("I wasn't told what to do this with, so I couldn't start.", failed=True)
        tool = work.agent.tools[0]
    targets = args.get("patient_ids")
    if isinstance(targets, list | tuple) and len(targets) > 1:
        return await _fan_out(work, directory, tool, args, [str(t) for t in targets])
    done = [r.result for r in work.history if isinstance(r.step, CallTool) and r.result]
    if not done:
        return CallTool(tool, _with_instructions(tool, args, work.instructions))
    return _finish(done[-1], work.instructions)


def acknowledge(work: Work) -> str:
    """What a sub-agent says on taking new instructions (and what becomes of them)."""
    said = "; ".join(_noted(i) for i in work.new_instructions)
    started = any(isinstance(r.step, CallTool) and r.result for r in work.history)
    last = work.history[-1] if work.history else None
    # A call with neither result nor error is still in flight: the tool has it now.
    in_flight = (
        last is not None
        and isinstance(last.step, CallTool)
        and last.result is None
        and last.error is None
    )
    tool = work.task.params.get("tool")
    if in_flight and tool == PRIOR_AUTH:
        then = "I've passed that on to the payer with the request."
    elif in_flight and tool == PHONE_CALL:
        then = "I'll bring that up on the call."
    elif started:
        then = "I'll include that in my report."
    elif tool == PRIOR_AUTH:
        then = "I'll include that in the request."
    elif tool == PHONE_CALL:
        then = "I'll bring that up on the call."
    else:
        then = "I'll take that into account."
    return f"Noted: {said}. {then}"


async def _fan_out(
    work: Work,
    directory: PatientDirectory,
    tool: str,
    args: Mapping[str, Any],
    targets: list[str],
) -> Step:
    """Several patients: one child task each; done alone if delegation is refused."""
    rest = {k: v for k, v in args.items() if k != "patient_ids"}
    delegations = [i for i, r in enumerate(work.history) if isinstance(r.step, Delegate)]
    if delegations and work.history[delegations[-1]].outcomes:
        items = [FinishedWork.of(o) for o in work.history[delegations[-1]].outcomes]
        return _finish_batch(items, work.instructions)
    if not delegations:
        helper = next(
            (a for a in work.team if tool in a.tools and not a.primary),
            work.agent if tool in work.agent.tools else None,
        )
        if helper is not None:
            return await _delegate_targets(work, directory, helper, tool, rest, targets)
    elif work.refusal is None and not work.history[delegations[-1]].error:
        return Finish("My helpers came back with nothing, so I couldn't finish.", failed=True)
    # Refused (the depth cap), or nobody to delegate to: do the work one by one.
    if tool not in work.agent.tools:
        return Finish(
            "I can't delegate further (depth limit), and I can't do this work myself.",
            failed=True,
        )
    since = delegations[-1] + 1 if delegations else 0
    results = [
        r.result
        for r in work.history[since:]
        if isinstance(r.step, CallTool) and r.result is not None
    ]
    if len(results) < len(targets):
        next_args = {**rest, "patient_id": targets[len(results)]}
        return CallTool(tool, _with_instructions(tool, next_args, work.instructions))
    return _finish_batch([FinishedWork.of_result(tool, r) for r in results], work.instructions)


async def _delegate_targets(
    work: Work,
    directory: PatientDirectory,
    helper: AgentDefinition,
    tool: str,
    rest: Mapping[str, Any],
    targets: Sequence[str],
) -> Delegate:
    patients = [await directory.get_patient(work.task.workspace_id, t) for t in targets]
    names = [p.name if p is not None else t for p, t in zip(patients, targets, strict=True)]
    verb = "Call" if tool == PHONE_CALL else "Records:"
    return Delegate(
        text=f"Splitting this into {len(targets)} tasks in parallel.",
        assignments=tuple(
            Assignment(
                agent_id=helper.id,
                title=f"{verb} {name}",
                subject=first_name(name),
                instructions=f"Use {tool} for {name}.",
                tool=tool,
                args={**rest, "patient_id": target},
            )
            for name, target in zip(names, targets, strict=True)
        ),
        rollup=True,
    )


def _noted(instruction: str) -> str:
    """An instruction as quoted inside a sentence: "mark it urgent"."""
    return lower_first(sentence(instruction)).rstrip(".")


def _with_instructions(
    tool: str, args: Mapping[str, Any], instructions: Sequence[str]
) -> dict[str, Any]:
    """The tool's args, with what the person added since (talking points, urgency)."""
    merged = dict(args)
    if not instructions or tool not in (PRIOR_AUTH, PHONE_CALL):
        return merged
    notes = [str(n) for n in merged.get("notes") or ()]
    for instruction in instructions:
        if tool == PRIOR_AUTH and Text.parse(instruction).has(*URGENT_WORDS):
            merged["urgent"] = True
        notes.append(sentence(instruction))
    merged["notes"] = notes
    return merged


def _finish(result: ToolResult, instructions: Sequence[str]) -> Finish:
    text = result.text
    # What the tool already took in (its notes) is in its result; say only the rest.
    taken = {" ".join(str(n).split()).rstrip(".").lower() for n in result.data.get("notes") or ()}
    extra = [
        _noted(i)
        for i in instructions
        if sentence(i) not in text and " ".join(i.split()).rstrip(".").lower() not in taken
    ]
    if extra:
        text += f" Also noted: {'; '.join(extra)}."
    data = dict(result.data)
    if instructions:
        data["instructions"] = list(instructions)
    return Finish(text, data)


def _finish_batch(items: Sequence[FinishedWork], instructions: Sequence[str]) -> Finish:
    # Never empty: a batch has at least two targets, and a delegation that came back
    # with no outcomes does not get here.
    text = rollup_text(items) if len(items) > 1 else single_followup(items[0])
    if instructions:
        text += f" Also noted: {'; '.join(_noted(i) for i in instructions)}."
    data = {"kind": f"{items[0].kind}_batch", "items": [dict(i.data) for i in items]}
    return Finish(text, data, failed=all(i.state is TaskState.FAILED for i in items))

"""The LLM brain: an agent thinks with a model served over the Chat Completions API.

A primary agent's turn is one call: the agent's instructions, its team, its tasks
(ids, titles, live state) and the conversation's recent messages go in; the model
answers in words (streamed to the person as it writes them), with a tool call for a
decision — delegate, check status, send instructions, cancel, or one of its quick
tools — or both. A sub-agent runs the usual tool loop on its own chat: each step is
one call over its assignment and what its tools returned, until it calls ``finish``.

The brain decides and the runtime acts: a task or agent the model names is looked up
by the runtime, which treats one the caller may not see as one that does not exist.
A malformed tool call is answered to the model once; a second fails the turn (the
person hears a plain "couldn't do that just now"). What a turn reports from live
state (status, cancellation, follow-ups) is written from the tasks themselves, as
the rule brain writes it, never from the model's memory of them.

With ``json_mode`` the model is asked for one schema-constrained JSON object instead
of tool calls (for small local models whose chat template has no tool calling).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from agents.brains import (
    Action,
    Assignment,
    CallTool,
    Cancel,
    CheckStatus,
    Delegate,
    Finish,
    Instruct,
    Note,
    Outcome,
    Reply,
    Step,
    StepRecord,
    Turn,
    UseTool,
    VerifyCaller,
    Work,
)
from agents.brains.llm import decisions, prompts
from agents.brains.llm.client import ChatClient, Completion, ModelError, ToolCall
from agents.brains.llm.decisions import Malformed, TextField
from agents.brains.rule import RuleBrain
from agents.brains.rule.steps import acknowledge
from agents.models import Task
from agents.ports import PatientDirectory
from agents.tools import ToolResult
from agents.verification import read_identity

__all__ = ["LLMBrain", "ModelError"]

DELEGATING = "I've started on that in the background and will let you know when it's done."


class LLMBrain:
    """A :class:`~agents.brains.Brain` backed by an OpenAI-compatible model server."""

    def __init__(
        self, client: ChatClient, directory: PatientDirectory, *, json_mode: bool = False
    ) -> None:
        self.client = client
        self.json_mode = json_mode
        # Replies from live state are written the same whatever the brain.
        self._words = RuleBrain(directory)

    # -- a primary agent's turn ------------------------------------------------------

    async def respond(self, turn: Turn) -> Action:
        helpers = [a for a in turn.team if a.id != turn.agent.id]
        own = [t for t in turn.tools if t.name in turn.agent.tools]
        unverified = turn.caller is not None and not turn.caller.verified
        if unverified:
            # A name and a date of birth, said plainly, need no model to be read; the
            # caller is offered nothing but verification until they are verified.
            identity = read_identity(turn.text)
            if identity is not None:
                return VerifyCaller(identity.name, identity.date_of_birth)
            helpers, own, turn = [], [], replace(turn, tasks=())
        if self.json_mode:
            return await self._respond_json(turn, helpers)
        messages = [prompts.system(turn, helpers), *prompts.transcript(turn)]
        tools = (
            decisions.caller_tools()
            if unverified
            else decisions.primary_tools(helpers, turn.tasks, own)
        )
        retried = False
        while True:
            completion = await self.client.complete(
                messages, tools=tools, on_text=turn.preview.write if turn.preview else None
            )
            try:
                return _action(completion, {t.name for t in own})
            except Malformed as error:
                if retried:
                    raise ModelError("the model's tool call was malformed twice") from None
                retried = True
                messages = [*messages, *_answer_malformed(completion, str(error))]

    async def _respond_json(self, turn: Turn, helpers: Sequence[Any]) -> Action:
        """One schema-constrained JSON decision, for a small model.

        Its chat is kept to one pattern, which such a model follows far better than
        prose: the instructions (the team, the tasks and their live state), worked
        examples of each decision this turn allows, then the person's words. The
        earlier messages are left out: measured on SmolLM2-135M, any transcript (even
        the person's lines alone) turned its status questions into new delegations.
        """
        # Tasks go by short handles (t1 newest): nothing random in the prompt, so the
        # same words get the same decision, and no id is the model's to copy.
        handles = {f"t{n}": task.id for n, task in enumerate(turn.tasks, start=1)}
        shown = tuple(replace(t, id=h) for h, t in zip(handles, turn.tasks, strict=True))
        unverified = turn.caller is not None and not turn.caller.verified
        schema = (
            decisions.caller_schema() if unverified else decisions.primary_schema(helpers, shown)
        )
        messages = [
            prompts.system(replace(turn, tasks=shown), helpers),
            *decisions.primary_examples(helpers, shown),
            {"role": "user", "content": turn.text},
        ]
        field = TextField()
        preview = turn.preview

        async def on_text(piece: str) -> None:
            shown = field.feed(piece)
            if shown and preview is not None:
                await preview.write(shown)

        retried = False
        while True:
            completion = await self.client.complete(
                messages, response_format=schema, on_text=on_text
            )
            try:
                return _json_action(completion.text, handles)
            except Malformed as error:
                if retried:
                    raise ModelError("the model's answer was malformed twice") from None
                retried = True
                messages = [
                    *messages,
                    {"role": "assistant", "content": completion.text},
                    {"role": "user", "content": f"That answer was not usable: {error}."},
                ]
                field = TextField()

    # -- a sub-agent's step ----------------------------------------------------------

    async def step(self, work: Work) -> Step:
        if work.new_instructions:
            # Acknowledged at once, in words written from the instructions themselves;
            # the model hears them from the next step on.
            return Note(acknowledge(work))
        if self.json_mode:
            return await self._step_json(work)
        messages = prompts.work_messages(work)
        tools = decisions.sub_agent_tools(work.tools)
        retried = False
        while True:
            completion = await self.client.complete(messages, tools=tools)
            try:
                return _step(completion, {t.name for t in work.tools})
            except Malformed as error:
                if retried:
                    raise ModelError("the model's tool call was malformed twice") from None
                retried = True
                messages = [*messages, *_answer_malformed(completion, str(error))]

    async def _step_json(self, work: Work) -> Step:
        """One schema-constrained JSON step, for a small model.

        The model chooses what to do; the words of the result are what the tools
        answered, never its own (a small model's own summary of a chart is made up).
        A tool is not offered straight after it answered, and ``finish`` not before
        anything has answered.
        """
        answers = [r for r in work.history if isinstance(r.step, CallTool)]
        last = answers[-1].step.tool if answers and isinstance(answers[-1].step, CallTool) else None
        offered = [t for t in work.tools if t.name != last]
        schema = decisions.sub_agent_schema(offered, may_finish=bool(answers))
        messages = prompts.json_work_messages(work)
        retried = False
        while True:
            completion = await self.client.complete(messages, response_format=schema)
            try:
                return _json_step(completion.text, {t.name for t in offered}, answers)
            except Malformed as error:
                if retried:
                    raise ModelError("the model's step was malformed twice") from None
                retried = True
                messages = [
                    *messages,
                    {"role": "assistant", "content": completion.text},
                    {"role": "user", "content": f"That answer was not usable: {error}."},
                ]

    # -- what is said from live state -------------------------------------------------

    def status_text(self, tasks: Sequence[Task]) -> str:
        return self._words.status_text(tasks)

    def cancel_text(self, tasks: Sequence[Task]) -> str:
        return self._words.cancel_text(tasks)

    def instruct_text(self, task: Task) -> str:
        return self._words.instruct_text(task)

    def tool_text(self, tool: str, result: ToolResult) -> str:
        return self._words.tool_text(tool, result)

    def progress_text(self, task: Task, progress: str) -> str:
        return self._words.progress_text(task, progress)

    def followup_text(self, outcomes: Sequence[Outcome], *, rollup: bool) -> str:
        return self._words.followup_text(outcomes, rollup=rollup)


def _answer_malformed(completion: Completion, error: str) -> list[dict[str, Any]]:
    """The model's own malformed answer, and what was wrong with it."""
    calls = completion.tool_calls or [ToolCall("call_0", "", "")]
    assistant: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text or None,
        "tool_calls": [
            {
                "id": call.id or f"call_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for i, call in enumerate(calls)
        ],
    }
    answers = [
        {"role": "tool", "tool_call_id": call.id or f"call_{i}", "content": f"error: {error}"}
        for i, call in enumerate(calls)
    ]
    return [assistant, *answers]


def _action(completion: Completion, quick: set[str]) -> Action:
    """The decision in *completion*; :class:`Malformed` if its tool calls do not fit."""
    text = completion.text.strip()
    if not completion.tool_calls:
        if not text:
            raise Malformed("say something or call a tool")
        return Reply(text)
    assignments = []
    for call in completion.tool_calls:
        args = decisions.arguments(call.arguments)
        if call.name == decisions.DELEGATE:
            assignments.append(decisions.assignment(args))
        elif call.name == decisions.CHECK_STATUS:
            return CheckStatus(decisions.ids(args, "task_ids"))
        elif call.name == decisions.SEND_INSTRUCTIONS:
            return Instruct(decisions.text(args, "task_id"), decisions.text(args, "text"))
        elif call.name == decisions.CANCEL:
            chosen = decisions.ids(args, "task_ids")
            if not chosen:
                raise Malformed("name the tasks to cancel")
            return Cancel(chosen)
        elif call.name == decisions.VERIFY_CALLER:
            return VerifyCaller(decisions.text(args, "name"), decisions.text(args, "date_of_birth"))
        elif call.name in quick:
            return UseTool(call.name, args, title=call.name, subject="")
        else:
            raise Malformed(f"there is no tool named {call.name[:60]!r}")
    return Delegate(text or DELEGATING, tuple(assignments), rollup=len(assignments) > 1)


def _json_answer(raw: str) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except json.JSONDecodeError:
        raise Malformed("the answer is not valid JSON") from None
    if not isinstance(answer, dict):
        raise Malformed("the answer must be a JSON object")
    return answer


def _json_action(raw: str, handles: Mapping[str, str]) -> Action:
    answer = _json_answer(raw)
    action = answer.get("action")

    def task_ids() -> tuple[str, ...]:
        # A handle the turn did not show goes on as it is: the runtime finds no such task.
        return tuple(handles.get(h, h) for h in decisions.ids(answer, "task_id"))

    if action == "reply":
        return Reply(decisions.text(answer, "text"))
    if action == decisions.DELEGATE:
        title = decisions.text(answer, "title")[: decisions.TITLE_LIMIT]
        said = decisions.text(answer, "text", required=False)
        return Delegate(
            said or DELEGATING,
            (Assignment(decisions.text(answer, "agent_id"), title, title, title),),
        )
    if action == decisions.CHECK_STATUS:
        return CheckStatus(task_ids())
    if action == decisions.SEND_INSTRUCTIONS:
        chosen = task_ids()
        return Instruct(chosen[0] if chosen else "", decisions.text(answer, "text"))
    if action == decisions.CANCEL:
        chosen = task_ids()
        if not chosen:
            raise Malformed("name the task to cancel")
        return Cancel(chosen)
    if action == decisions.VERIFY_CALLER:
        return VerifyCaller(decisions.text(answer, "name"), decisions.text(answer, "date_of_birth"))
    raise Malformed("unknown action")


def _json_step(raw: str, tools: set[str], answers: Sequence[StepRecord]) -> Step:
    answer = _json_answer(raw)
    action = answer.get("action")
    if action == decisions.FINISH and answers:
        last = answers[-1]
        if last.error is not None:
            return Finish(f"I couldn't finish: {last.error}", failed=True)
        return Finish(last.result.text if last.result is not None else "Done.")
    if isinstance(action, str) and action in tools:
        args = answer.get("arguments", {})
        if not isinstance(args, dict):
            raise Malformed("the arguments must be a JSON object")
        return CallTool(action, args)
    raise Malformed("unknown action")


def _step(completion: Completion, tools: set[str]) -> Step:
    if not completion.tool_calls:
        text = completion.text.strip()
        if not text:
            raise Malformed("call a tool or finish")
        return Finish(text)
    call = completion.tool_calls[0]
    args = decisions.arguments(call.arguments)
    if call.name == decisions.FINISH:
        return Finish(decisions.text(args, "result"), failed=bool(args.get("failed", False)))
    if call.name in tools:
        return CallTool(call.name, args)
    raise Malformed(f"there is no tool named {call.name[:60]!r}")

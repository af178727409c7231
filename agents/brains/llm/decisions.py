"""What the LLM brain offers a model, and how it reads the model's answer back.

A primary agent's decisions are tools (``delegate``, ``check_status``,
``send_instructions``, ``cancel``, and its own quick tools); a sub-agent's are its
tools and ``finish``. For a model server that cannot call tools reliably, the same
choices are one JSON object whose schema the server enforces (``response_format``),
its ``text`` streamed as it is written (:class:`TextField`).

Every name the model writes (a task, an agent) is checked only by the runtime, which
answers one the caller may not see exactly as one that does not exist.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agents.brains import Assignment, TaskSummary, ToolInfo
from agents.models import AgentDefinition

DELEGATE = "delegate"
CHECK_STATUS = "check_status"
SEND_INSTRUCTIONS = "send_instructions"
CANCEL = "cancel"
VERIFY_CALLER = "verify_caller"
FINISH = "finish"
DECISIONS = (DELEGATE, CHECK_STATUS, SEND_INSTRUCTIONS, CANCEL)


class Malformed(ValueError):
    """The model's tool call does not fit what it was offered (told to it, never logged)."""


def _function(
    name: str, description: str, properties: Mapping[str, Any], required: Sequence[str]
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": dict(properties),
                "required": list(required),
                "additionalProperties": False,
            },
        },
    }


def _task_ids(tasks: Sequence[TaskSummary]) -> dict[str, Any]:
    ids = [t.id for t in tasks]
    return {"type": "string", "enum": ids} if ids else {"type": "string"}


def primary_tools(
    helpers: Sequence[AgentDefinition], tasks: Sequence[TaskSummary], own: Sequence[ToolInfo]
) -> list[dict[str, Any]]:
    """The tools a primary agent is offered for one turn."""
    running = [t for t in tasks if not t.terminal]
    offered = []
    if helpers:
        offered.append(
            _function(
                DELEGATE,
                "Hand slow work to one of the team's agents; it runs in the background.",
                {
                    "agent_id": {"type": "string", "enum": [a.id for a in helpers]},
                    "title": {"type": "string", "description": "a short title naming who and what"},
                    "subject": {"type": "string", "description": "who or what it is about"},
                    "instructions": {"type": "string"},
                },
                ["agent_id", "title", "instructions"],
            )
        )
    if tasks:
        offered.append(
            _function(
                CHECK_STATUS,
                "Report the live state of background tasks (all of them if none named).",
                {"task_ids": {"type": "array", "items": _task_ids(tasks)}},
                [],
            )
        )
    if running:
        offered.append(
            _function(
                SEND_INSTRUCTIONS,
                "Give a running background task new instructions.",
                {"task_id": _task_ids(running), "text": {"type": "string"}},
                ["task_id", "text"],
            )
        )
        offered.append(
            _function(
                CANCEL,
                "Cancel running background tasks.",
                {"task_ids": {"type": "array", "items": _task_ids(running), "minItems": 1}},
                ["task_ids"],
            )
        )
    for tool in own:
        offered.append(
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.parameters) or {"type": "object"},
                },
            }
        )
    return offered


def caller_tools() -> list[dict[str, Any]]:
    """The one tool a primary agent is offered while a phone caller is not verified."""
    return [
        _function(
            VERIFY_CALLER,
            "Check the caller's full name and date of birth against the records. Call it "
            "as soon as the caller has said both; nothing else may be done for them first.",
            {
                "name": {"type": "string", "description": "the caller's full name"},
                "date_of_birth": {"type": "string", "description": "as said, e.g. 1968-03-14"},
            },
            ["name", "date_of_birth"],
        )
    ]


def caller_schema() -> dict[str, Any]:
    """The JSON decision of a turn while a phone caller is not verified."""
    sentence = {"type": "string", "maxLength": TEXT_LIMIT}
    name = {"type": "string", "maxLength": TITLE_LIMIT}
    choices = [
        _choice_of("reply", text=sentence),
        _choice_of(VERIFY_CALLER, name=name, date_of_birth=name),
    ]
    return _response_format("decision", choices)


def sub_agent_tools(own: Sequence[ToolInfo]) -> list[dict[str, Any]]:
    """The tools a sub-agent is offered for its next step."""
    offered = [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters) or {"type": "object"},
            },
        }
        for tool in own
    ]
    offered.append(
        _function(
            FINISH,
            "End the task with its result, for the agent that asked.",
            {"result": {"type": "string"}, "failed": {"type": "boolean"}},
            ["result"],
        )
    )
    return offered


TEXT_LIMIT = 160
TITLE_LIMIT = 60
"""How long a JSON answer's sentence and title may be: a small model that rambles is
cut off by its grammar, not by the token limit halfway through a string."""


def _choice_of(action: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"action": {"const": action}, **properties},
        "required": ["action", *properties],
        "additionalProperties": False,
    }


def primary_schema(
    helpers: Sequence[AgentDefinition], tasks: Sequence[TaskSummary]
) -> dict[str, Any]:
    """The one JSON object a primary agent answers with where tools are not used.

    One shape per decision the turn allows (``anyOf``), ``action`` first so that the
    grammar settles the decision before the words, whose ``text`` streams as written.
    """
    sentence = {"type": "string", "maxLength": TEXT_LIMIT}
    choices = [_choice_of("reply", text=sentence)]
    if helpers:
        choices.append(
            _choice_of(
                DELEGATE,
                agent_id={"enum": [a.id for a in helpers]},
                title={"type": "string", "maxLength": TITLE_LIMIT},
                text=sentence,
            )
        )
    running = [t.id for t in tasks if not t.terminal]
    if tasks:
        choices.append(_choice_of(CHECK_STATUS, task_id={"enum": [t.id for t in tasks]}))
    if running:
        choices.append(_choice_of(SEND_INSTRUCTIONS, task_id={"enum": running}, text=sentence))
        choices.append(_choice_of(CANCEL, task_id={"enum": running}))
    return _response_format("decision", choices)


def sub_agent_schema(own: Sequence[ToolInfo], *, may_finish: bool = True) -> dict[str, Any]:
    """A sub-agent's next step as one JSON object: a tool and its arguments, or ``finish``
    (the result is what the tools answered).

    Without *may_finish* only its tools are offered: a small model's result before
    any tool has answered would be made up.
    """
    choices = [_choice_of(tool.name, arguments=_parameters(tool)) for tool in own]
    if may_finish or not choices:
        choices.append(_choice_of(FINISH))
    return _response_format("step", choices)


ARRAY_LIMIT = 8
STRING_LIMIT = 200
"""Bounds put on a tool's arrays and strings where its schema sets none: a small model
under a grammar otherwise repeats an item until it runs out of tokens."""


def _parameters(tool: ToolInfo) -> dict[str, Any]:
    """A tool's argument schema, bounded; one that declares none takes no arguments."""
    if tool.parameters.get("properties"):
        bounded: dict[str, Any] = _bounded(dict(tool.parameters))
        return bounded
    return {"type": "object", "properties": {}, "additionalProperties": False}


def _bounded(schema: Any) -> Any:
    """*schema* with a length limit on every array and string that has none."""
    if isinstance(schema, list):
        return [_bounded(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: _bounded(value) for key, value in schema.items()}
    if bounded.get("type") == "array":
        bounded.setdefault("maxItems", ARRAY_LIMIT)
        if "enum" in (bounded.get("items") or {}):
            bounded.setdefault("uniqueItems", True)
    if bounded.get("type") == "string" and "enum" not in bounded:
        bounded.setdefault("maxLength", STRING_LIMIT)
    return bounded


def _response_format(name: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    schema = choices[0] if len(choices) == 1 else {"anyOf": choices}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


STATUS_SHOTS = ("how is it going?", "is it done?", "any news?")
CANCEL_SHOTS = ("stop that", "cancel it")
INSTRUCT_SHOTS = (("tell them to be quick", "Please be quick."),)


def primary_examples(
    helpers: Sequence[AgentDefinition], tasks: Sequence[TaskSummary]
) -> list[dict[str, Any]]:
    """Worked examples for a small model: turns of each kind this turn allows.

    Each decision gets as many examples as the model needs to pick it as often as
    delegation (measured on SmolLM2-135M: with one status example against three
    delegations, most status questions started new work). The delegations come from
    the workspace's own ``examples`` phrases, one per agent.
    """
    shots: list[tuple[str, dict[str, Any]]] = [
        ("hello", {"action": "reply", "text": "Hello! How can I help?"})
    ]
    running = [t for t in tasks if not t.terminal]
    if tasks:
        latest = (running or tasks)[0].id
        shots += [(said, {"action": CHECK_STATUS, "task_id": latest}) for said in STATUS_SHOTS]
    if running:
        first = running[0].id
        shots += [(said, {"action": CANCEL, "task_id": first}) for said in CANCEL_SHOTS]
        shots += [
            (said, {"action": SEND_INSTRUCTIONS, "task_id": first, "text": text})
            for said, text in INSTRUCT_SHOTS
        ]
    for agent in helpers:
        for example in agent.examples[:1]:
            said = f"I've asked the {agent.name.lower()}; I'll let you know."
            shots.append(
                (
                    example,
                    {
                        "action": DELEGATE,
                        "agent_id": agent.id,
                        "title": example[:TITLE_LIMIT],
                        "text": said,
                    },
                )
            )
    messages: list[dict[str, Any]] = []
    for said, answer in shots:
        messages.append({"role": "user", "content": said})
        messages.append({"role": "assistant", "content": json.dumps(answer)})
    return messages


def arguments(raw: str) -> dict[str, Any]:
    """A tool call's arguments as an object; :class:`Malformed` if they are not one."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise Malformed("the arguments are not valid JSON") from None
    if not isinstance(value, dict):
        raise Malformed("the arguments must be a JSON object")
    return value


def text(args: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = args.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if required:
        raise Malformed(f"{key} must be a non-empty string")
    return ""


def ids(args: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = args.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Malformed(f"{key} must be a list of task ids")
    return tuple(value)


def assignment(args: Mapping[str, Any]) -> Assignment:
    title = text(args, "title")
    return Assignment(
        agent_id=text(args, "agent_id"),
        title=title[:120],
        subject=text(args, "subject", required=False) or title[:60],
        instructions=text(args, "instructions", required=False) or title,
    )


class TextField:
    """Streams the string value of one top-level key out of JSON as it is written.

    Fed the answer piece by piece, :meth:`feed` returns the newly decoded characters
    of ``"text": "…"`` (escapes resolved, an escape cut between pieces held back).
    """

    def __init__(self, key: str = "text") -> None:
        self._opening = f'"{key}"'
        self._buffer = ""
        self._start: int | None = None
        self._at = 0
        self.closed = False

    def feed(self, piece: str) -> str:
        self._buffer += piece
        if self.closed:
            return ""
        if self._start is None:
            found = self._buffer.find(self._opening)
            if found < 0:
                return ""
            rest = self._buffer[found + len(self._opening) :].lstrip()
            if not rest.startswith(":"):
                return ""
            value = rest[1:].lstrip()
            if not value:
                return ""
            if value[0] != '"':
                self.closed = True
                return ""
            self._start = len(self._buffer) - len(value) + 1
            self._at = self._start
        out = []
        buffer = self._buffer
        i = self._at
        while i < len(buffer):
            ch = buffer[i]
            if ch == '"':
                self.closed = True
                i += 1
                break
            if ch == "\\":
                if i + 1 >= len(buffer):
                    break
                escape = buffer[i + 1]
                if escape == "u":
                    if i + 6 > len(buffer):
                        break
                    with contextlib.suppress(ValueError):
                        out.append(chr(int(buffer[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "", "b": "", "f": ""}.get(escape, escape))
                i += 2
                continue
            out.append(ch)
            i += 1
        self._at = i
        return "".join(out)

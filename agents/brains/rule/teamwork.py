"""New work for any workspace: the person's words read against the team's own agents
(name, description, example phrases) and tools (name, description).

This is how the rule brain serves a workspace it has no lexicon for. An agent whose
examples or description the request fits clearly gets the work; a weaker fit is asked
about first, quoting an example of that agent's so the person can see what fits; a
negated or held request starts nothing. Arguments come from the tool's parameter
schema where the brain knows it: a patient's name for a "patient" parameter, the
person's words for a free-text one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.brains import Action, Assignment, Delegate, Reply
from agents.brains.rule.context import Ask, Context
from agents.brains.rule.grammar import held, is_question
from agents.brains.rule.sentences import patient_label
from agents.brains.rule.text import normalize, stem
from agents.brains.rule.vocabulary import FILLER, NEGATORS
from agents.models import AgentDefinition
from agents.tools import Tool

CLEAR_FIT = 0.6
"""The share of an example's (or a description's) words a request must have to delegate."""
WEAK_FIT = 0.3
"""Below this, the request is not about this agent at all."""

_YES = frozenset(
    [
        "yes",
        "yeah",
        "yep",
        "sure",
        "please",
        "ok",
        "okay",
        "go",
        "ahead",
        "do",
        "it",
        "correct",
        "right",
    ]
)
_PERSON_PARAMS = ("patient", "person", "name", "who", "contact", "customer", "client")
_TEXT_PARAMS = (
    "request",
    "text",
    "message",
    "query",
    "details",
    "note",
    "notes",
    "description",
    "prompt",
    "input",
    "instructions",
    "question",
    "body",
    "summary",
)


@dataclass(frozen=True, slots=True)
class Fit:
    """How well a request fits one agent, and the example it fits best."""

    agent: AgentDefinition
    score: float
    example: str | None


def _stems(text: str) -> set[str]:
    return {stem(w) for w in normalize(text).split() if w not in FILLER} - {""}


def fits(
    words: Sequence[str],
    team: Sequence[AgentDefinition],
    tools: Mapping[str, Tool],
    me: str,
) -> list[Fit]:
    """Each helper's fit to *words*, best first."""
    asked = {stem(w) for w in words if w not in FILLER} - {""}
    found: list[Fit] = []
    if not asked:
        return found
    for agent in team:
        if agent.id == me or agent.primary:
            continue
        best, example = 0.0, None
        for phrase in agent.examples:
            wanted = _stems(phrase)
            if wanted:
                share = len(asked & wanted) / len(wanted)
                if share > best:
                    best, example = share, phrase
        about = _stems(f"{agent.name} {agent.description}")
        for name in agent.tools:
            about |= _stems(name.replace(".", " ").replace("_", " "))
            tool = tools.get(name)
            if tool is not None:
                about |= _stems(tool.description)
        if about:
            overlap = len(asked & about)
            # A description is long and loose: two shared words are a clear fit.
            described = min(1.0, overlap / 2) * CLEAR_FIT if overlap else 0.0
            if described > best:
                best = described
        found.append(Fit(agent, best, example or next(iter(agent.examples), None)))
    found.sort(key=lambda f: f.score, reverse=True)
    return found


def delegate_to_team(ctx: Context) -> Action | None:
    """Hand the request to the agent it fits, ask when unsure; ``None`` if none fits."""
    reading = ctx.reading
    tools = ctx.tools
    ranked = fits(reading.words, ctx.turn.team, tools, ctx.turn.agent.id)
    if not ranked or ranked[0].score < WEAK_FIT:
        return None
    best = ranked[0]
    if set(reading.words) & NEGATORS or held(reading):
        return Reply("Okay — I won't start anything.")
    if is_question(reading):
        return None
    confirmed = bool(set(ctx.hint) & _YES)
    runner_up = ranked[1].score if len(ranked) > 1 else 0.0
    if not confirmed and (best.score < CLEAR_FIT or runner_up >= best.score - 0.1):
        return _ask(best, ranked)
    return _assign(ctx, best.agent, tools)


def _ask(best: Fit, ranked: Sequence[Fit]) -> Ask:
    example = f" (it takes things like “{best.example}”)" if best.example else ""
    others = [f.agent.name for f in ranked[1:3] if f.score >= WEAK_FIT]
    alternative = f", or should {' or '.join(others)}" if others else ""
    # Ends with the question mark: the next turn's "yes" is read as its answer.
    return Ask(f"Should I hand that to {best.agent.name}{example}{alternative}?")


def _assign(ctx: Context, agent: AgentDefinition, tools: Mapping[str, Tool]) -> Delegate:
    words = set(ctx.reading.words)
    chosen = agent.tools[0] if agent.tools else None
    if len(agent.tools) > 1:
        scored = [
            (len(words & _stems(f"{n} {tools[n].description if n in tools else ''}")), n)
            for n in agent.tools
        ]
        chosen = max(scored)[1]
    request = ctx.reading.original.strip()
    patients = ctx.workspace.patients_in(ctx.reading.words)
    args = _arguments(tools.get(chosen) if chosen else None, request, patients)
    who = f" for {patient_label(patients[0], ctx.workspace.patients)}" if patients else ""
    title = f"{agent.name}{who}"
    return Delegate(
        text=f"I've asked {agent.name} to take care of that in the background — I'll let "
        "you know when it's done.",
        assignments=(
            Assignment(
                agent_id=agent.id,
                title=title,
                subject=patients[0].name.split()[0] if patients else agent.name,
                instructions=request,
                tool=chosen,
                args=args,
            ),
        ),
    )


def _arguments(tool: Tool | None, request: str, patients: Sequence[Any]) -> dict[str, Any]:
    """Arguments for *tool* from its schema: a patient for a person, the words for text."""
    if tool is None:
        return {"request": request}
    properties = tool.parameters.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return {}
    args: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        lowered = str(name).lower()
        if kind not in (None, "string"):
            continue
        if patients and any(p in lowered for p in _PERSON_PARAMS):
            args[str(name)] = patients[0].id if lowered.endswith("id") else patients[0].name
        elif any(t in lowered for t in _TEXT_PARAMS):
            args[str(name)] = request
    return args

"""New work for any workspace: the person's words read against the team's own agents.

The demo's intents know its tools (calls, prior auths, charts). For every other
workspace the rule brain reads what the file says of each agent — its name,
description and example phrases — and of the tools it uses, and delegates to the one
agent the words fit clearly better than any other. It never acts on a negated
request, and when two agents fit about as well it asks which, naming both.

Arguments for the agent's tool are filled from its JSON Schema: a patient the words
name goes into a ``patient``/``patient_id`` property, the request itself into the
first free-text property (``query``, ``request``, ``text``… or the first required
string); a required property it cannot fill means asking instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.brains import Action, Assignment, Delegate, Reply, ToolInfo, Turn
from agents.brains.rule.matching import PatientIndex
from agents.brains.rule.text import Text, is_question, stem
from agents.brains.rule.vocabulary import FILLER, words
from agents.demo.payer import PRIOR_AUTH
from agents.demo.records import RECORDS_LOOKUP
from agents.demo.telephony import PHONE_CALL
from agents.models import AgentDefinition, Patient

# Words that say "don't": a request containing one of these never starts work here.
NEGATORS = words("not no never dont don't without stop hold cancel off")
NEGATED_PHRASES = ("do not", "hold off", "not yet", "no need", "never mind", "don t")
# Words too common in descriptions to tell agents apart.
GENERIC = words("agent agents patient patients person people team work help handle handles")
GENERIC |= words("report reports result results tool tools ask asks use uses answer answers")
TEXT_PROPERTIES = ("query", "request", "question", "text", "details", "description", "task")
PATIENT_ID_PROPERTIES = ("patient_id", "patientid", "member_id", "person_id")
PATIENT_NAME_PROPERTIES = ("patient", "patient_name", "name", "person")
BUILTIN_WORK = frozenset({PHONE_CALL, PRIOR_AUTH, RECORDS_LOOKUP})
"""Tools whose requests the rule brain's own intents read (calls, prior auths, charts)."""
MIN_SCORE = 2.0
"""A match needs at least this much evidence (an example phrase's words count double)."""
CLEAR_MARGIN = 1.25
"""…and to beat the runner-up by this factor, or the brain asks which agent."""


@dataclass(frozen=True, slots=True)
class _Fit:
    agent: AgentDefinition
    score: float


def delegate_to_team(text: Text, turn: Turn, index: PatientIndex) -> Action | None:
    """Delegate to the team agent the words fit, ask between two, or ``None``."""
    # The builtin tools' work has intents of its own, which have already said no.
    team = [
        a
        for a in turn.team
        if a.id != turn.agent.id and a.tools and not set(a.tools) <= BUILTIN_WORK
    ]
    if not team or _negated(text) or is_question(text):
        return None  # "is it covered?" asks; it starts nothing
    # Who and which medicine say what the work is about, not which kind of work it is.
    said = _content(text.words) - index.name_words() - index.medications()
    if not said:
        return None
    tools = {t.name: t for t in turn.tools}
    fits = sorted(
        (_Fit(agent, _score(said, agent, tools)) for agent in team),
        key=lambda f: f.score,
        reverse=True,
    )
    best = fits[0]
    if best.score < MIN_SCORE:
        return None
    runner_up = fits[1] if len(fits) > 1 else None
    if runner_up is not None and best.score < runner_up.score * CLEAR_MARGIN:
        return Reply(
            f"Should I hand that to the {best.agent.name} or the {runner_up.agent.name}? "
            f"Say, for example, “{_example(best.agent)}”."
        )
    patients = index.named_in(text)
    tool = _best_tool(said, best.agent, tools)
    args, missing = _arguments(tool, text, patients)
    if missing:
        return Reply(
            f"The {best.agent.name} can do that, but I need the {missing.replace('_', ' ')} "
            f"first — for example, “{_example(best.agent)}”."
        )
    who = patients[0] if len(patients) == 1 else None
    subject = who.name.split()[0] if who is not None else _gist(text)
    title = best.agent.name + (
        f" for {_short_name(who)}" if who is not None else f": {_gist(text)}"
    )
    return Delegate(
        text=f"I've asked the {best.agent.name.lower()} to take care of that in the background "
        "— I'll let you know as soon as there's news.",
        assignments=(
            Assignment(
                agent_id=best.agent.id,
                title=title,
                subject=subject,
                instructions=turn.text,
                tool=None if tool is None else tool.name,
                args=args,
            ),
        ),
    )


def _negated(text: Text) -> bool:
    return bool(NEGATORS & set(text.words)) or text.has(*NEGATED_PHRASES)


def _content(tokens: Sequence[str]) -> set[str]:
    return {stem(w) for w in tokens if w not in FILLER and w not in GENERIC and len(w) > 2}


def _words_of(text: str) -> set[str]:
    return _content(Text.parse(text).words)


def _score(said: set[str], agent: AgentDefinition, tools: Mapping[str, ToolInfo]) -> float:
    score = 0.0
    described = _words_of(f"{agent.name} {agent.description}")
    score += len(said & described)
    for example in agent.examples:
        score += 2 * len(said & _words_of(example))
    for name in agent.tools:
        tool = tools.get(name)
        if tool is not None:
            score += 0.5 * len(said & _words_of(f"{re.sub(r'[._]', ' ', name)} {tool.description}"))
    return score


def _best_tool(
    said: set[str], agent: AgentDefinition, tools: Mapping[str, ToolInfo]
) -> ToolInfo | None:
    known = [tools[name] for name in agent.tools if name in tools]
    if not known:
        return None
    return max(
        known,
        key=lambda t: len(said & _words_of(f"{re.sub(r'[._]', ' ', t.name)} {t.description}")),
    )


def _arguments(
    tool: ToolInfo | None, text: Text, patients: Sequence[Patient]
) -> tuple[dict[str, Any], str]:
    """Arguments for *tool* from the words, and the first required one left unfilled."""
    if tool is None:
        return {}, ""
    schema = tool.parameters
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = [str(r) for r in schema.get("required") or ()]
    args: dict[str, Any] = {}
    patient = patients[0] if len(patients) == 1 else None
    for name, prop in properties.items():
        kind = prop.get("type") if isinstance(prop, Mapping) else None
        if kind not in (None, "string"):
            continue
        lowered = name.lower()
        if patient is not None and lowered in PATIENT_ID_PROPERTIES:
            args[name] = patient.id
        elif patient is not None and lowered in PATIENT_NAME_PROPERTIES:
            args[name] = patient.name
    free = [n for n in properties if n.lower() in TEXT_PROPERTIES and n not in args]
    free += [
        n for n in required if n not in args and n not in free and _is_string(properties.get(n))
    ]
    if free:
        args[free[0]] = text.original.strip()
    missing = next((r for r in required if r not in args), "")
    return args, missing


def _is_string(prop: Any) -> bool:
    return isinstance(prop, Mapping) and prop.get("type", "string") == "string"


def _example(agent: AgentDefinition) -> str:
    if agent.examples:
        return agent.examples[0]
    return agent.description.rstrip(".")


def _gist(text: Text) -> str:
    kept = [w for w in text.words if w not in FILLER][:5]
    return " ".join(kept) or "a request"


def _short_name(patient: Patient) -> str:
    parts = patient.name.split()
    return parts[0] if len(parts) == 1 else f"{parts[0]} {parts[-1][0]}."

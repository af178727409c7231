"""Turns that ask for new work: prior authorizations, calls to patients, and record
lookups — plus questions about what a prior authorization is.

Each hands the work to the first agent of the team that has the tool, as background
tasks, except a single chart lookup the agent can do itself inline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agents.brains import Action, Assignment, Delegate, Reply, Turn, UseTool
from agents.brains.rule.matching import PatientIndex, count, fields, medication, onboarding_group
from agents.brains.rule.sentences import join, short_names
from agents.brains.rule.text import Text, is_question
from agents.brains.rule.vocabulary import (
    APPROVAL,
    CROSS_WORDS,
    DETERMINERS,
    EVERYONE,
    EXPLAIN_LEADS,
    OUTREACH_PHRASES,
    OUTREACH_VERBS,
    PRIOR_AUTH_PHRASES,
    RECORD_WORDS,
    URGENT_WORDS,
)
from agents.demo.payer import PRIOR_AUTH
from agents.demo.records import RECORDS_LOOKUP, first_name
from agents.demo.telephony import PHONE_CALL
from agents.models import AgentDefinition


def _helper(team: Sequence[AgentDefinition], tool: str, me: str) -> AgentDefinition | None:
    """The first of the team (not *me*) whose tools include *tool*."""
    for agent in team:
        if tool in agent.tools and agent.id != me:
            return agent
    return None


def explain(text: Text, turn: Turn, index: PatientIndex) -> Action | None:
    """What a prior authorization is, when asked."""
    if not text.has(*PRIOR_AUTH_PHRASES):
        return None
    if not (text.starts(*EXPLAIN_LEADS) or is_question(text)) or text.has("can you", "could you"):
        return None
    return Reply(
        "A prior authorization is the insurer's OK before it covers a medication: we send "
        "the prescription and the clinical reasons, and the payer (often via its pharmacy "
        "desk) decides, usually within a few days. I can start one in the background — "
        "just tell me the medication and the patient."
    )


def prior_auth(text: Text, turn: Turn, index: PatientIndex) -> Action | None:
    """A prior authorization for the medicine named, filed in the background."""
    if is_question(text):
        return None
    named_medicine = any(w in index.medications() for w in text.words)
    if not (text.has(*PRIOR_AUTH_PHRASES) or (named_medicine and text.has(*APPROVAL))):
        return None
    medicine = medication(text, index)
    if medicine is None:
        return Reply("Which medication is the prior authorization for?")
    agent = _helper(turn.team, PRIOR_AUTH, turn.agent.id)
    if agent is None:
        return Reply("None of our agents can file prior authorizations, I'm afraid.")
    named = index.named_in(text)
    patient = named[0] if named else None
    args: dict[str, Any] = {"medication": medicine}
    whose = ""
    if patient is not None:
        args["patient_id"] = patient.id
        whose = f" for {first_name(patient.name)}"
    if text.has(*URGENT_WORDS):
        args["urgent"] = True
    return Delegate(
        text=f"Let me start that in the background — I'll file the prior authorization for "
        f"{medicine}{whose} and let you know as soon as the payer decides.",
        assignments=(
            Assignment(
                agent_id=agent.id,
                title=f"Prior auth: {medicine}",
                subject=medicine,
                instructions=f"Get a prior authorization for {medicine}"
                + (f" for {patient.name}." if patient is not None else "."),
                tool=PRIOR_AUTH,
                args=args,
            ),
        ),
        rollup=False,
    )


def _outreach_verb(text: Text) -> bool:
    """Whether *text* asks to call someone (a verb, not "the calls" or "contact details")."""
    if text.has(*OUTREACH_PHRASES) or re.search(r" give \w+(?: \w+)? a (call|ring) ", text.padded):
        return True
    words = text.words
    for i, word in enumerate(words):
        if word not in OUTREACH_VERBS:
            continue
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if before in DETERMINERS or after in {"info", "information", "details", "list"}:
            continue  # a noun: "the calls", "contact details"
        return True
    return False


def outreach(text: Text, turn: Turn, index: PatientIndex) -> Action | None:
    """Calls to the patients named, or to the onboarding group, one task each."""
    if not _outreach_verb(text) or is_question(text):
        return None
    group = onboarding_group(text, index.patients)
    named = index.named_in(text)
    purpose = "follow-up"
    if group is not None:
        targets, purpose = group, "onboarding"
        if not targets:
            return Reply("Everyone has finished onboarding — there's nobody to call.")
    elif named:
        targets = named
    elif text.has(*EVERYONE):
        return Reply(
            f"Do you want us to call all {len(index.patients)} patients, or just "
            "the ones who haven't finished onboarding?"
        )
    else:
        return None
    agent = _helper(turn.team, PHONE_CALL, turn.agent.id)
    if agent is None:
        return Reply("None of our agents can make phone calls, I'm afraid.")
    names = short_names(targets)
    about = "about finishing onboarding" if purpose == "onboarding" else "to follow up"
    assignments = tuple(
        Assignment(
            agent_id=agent.id,
            title=f"Call {p.name}",
            subject=short,
            instructions=f"Call {p.name} {about}, and report how it went.",
            tool=PHONE_CALL,
            args={"patient_id": p.id, "purpose": purpose},
        )
        for p, short in zip(targets, names, strict=True)
    )
    return Delegate(
        text=f"I'll have our outreach team call {join(names)} in the background — I'll let "
        "you know how it goes.",
        assignments=assignments,
        rollup=len(assignments) > 1,
    )


def records(text: Text, turn: Turn, index: PatientIndex) -> Action | None:
    """Chart lookups: one inline, or several in parallel for a cross-referenced summary."""
    asked = fields(text)
    crossing = text.has(*CROSS_WORDS)
    if not (text.has(*RECORD_WORDS) or asked or crossing):
        return None
    named = index.named_in(text)
    how_many = count(text)
    group = onboarding_group(text, index.patients)
    if named:
        targets = named
    elif group is not None:
        targets = group
    elif how_many is not None:
        # "five patients' charts": the first who have full charts.
        charted = [p for p in index.patients if p.onboarding_complete]
        targets = (charted + [p for p in index.patients if p not in charted])[:how_many]
    elif text.has(*EVERYONE):
        targets = list(index.patients)
    else:
        if text.has("look up", "lookup", "pull up", "record", "records", "chart", "charts"):
            return Reply("Whose records should I look up?")
        return None
    if not targets:
        return Reply("There's nobody in the directory that fits — no records to look up.")
    if len(targets) == 1 and not crossing and RECORDS_LOOKUP in turn.agent.tools:
        patient = targets[0]
        return UseTool(
            RECORDS_LOOKUP,
            {"patient_id": patient.id, "fields": asked},
            title=f"Records: {patient.name}",
            subject=first_name(patient.name),
        )
    helper = _helper(turn.team, RECORDS_LOOKUP, turn.agent.id)
    if helper is None:
        return Reply("None of our agents can look up records, I'm afraid.")
    names = short_names(targets)
    assignments = tuple(
        Assignment(
            agent_id=helper.id,
            title=f"Records: {p.name}",
            subject=short,
            instructions=f"Look up {p.name}'s chart.",
            tool=RECORDS_LOOKUP,
            args={"patient_id": p.id, "fields": asked},
        )
        for p, short in zip(targets, names, strict=True)
    )
    if len(assignments) == 1:
        return Delegate(
            f"Let me pull {names[0]}'s chart in the background — I'll get back to you.",
            assignments,
            rollup=False,
        )
    return Delegate(
        text=f"Let me pull those charts in the background — {len(assignments)} lookups in "
        f"parallel for {join(names)}. I'll get back to you with a cross-referenced summary.",
        assignments=assignments,
        rollup=True,
    )

"""Turns about new work: prior authorizations, calls to patients, record lookups —
questions about what a prior authorization is, and work someone said not to do.

New work starts only when it is commanded. :func:`forbidden` runs first and answers
every sentence that names work under a negation ("don't call Bob"), a hold ("hold
off", "not yet", "until Monday") or as a report or a question ("I'll call Bob myself",
"should we call Bob?"), so nothing after it ever sees them. Each kind of work is
handed to the first agent of the team that has its tool, as background tasks, except a
single chart lookup the agent can do itself inline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agents.brains import Action, Assignment, Delegate, Reply, UseTool
from agents.brains.rule.context import Context
from agents.brains.rule.grammar import (
    Occurrence,
    find,
    held,
    imperative,
    is_question,
    lead_length,
    negated,
    subject_before,
)
from agents.brains.rule.lexicon import WorkKind
from agents.brains.rule.reading import Reading
from agents.brains.rule.sentences import capital, join, patient_label, short_names
from agents.brains.rule.vocabulary import (
    CROSS_WORDS,
    EVERYONE,
    EXPLAIN_LEADS,
    FIELD_WORDS,
    FILLER,
    NUMBERS,
    RECORD_WORDS,
)
from agents.demo.records import FIELDS, first_name
from agents.models import AgentDefinition

_GIVE_A_CALL = re.compile(r" give (?:\w+ ){1,3}a (?:quick )?(?:call|ring|buzz) ")


def _helper(ctx: Context, tool: str) -> AgentDefinition | None:
    """The first of the team (not the agent itself) whose tools include *tool*."""
    me = ctx.turn.agent.id
    return next((a for a in ctx.turn.team if tool in a.tools and a.id != me), None)


def _request_words(kind: WorkKind) -> tuple[str, ...]:
    return (*kind.verbs, *kind.nouns)


# -- what must not start anything -----------------------------------------------------


def forbidden(ctx: Context) -> Action | None:
    """A reply, and nothing else, for work named under a negation, a hold or a report."""
    reading = ctx.reading
    lexicon = ctx.workspace.lexicon
    occurrences: list[tuple[Occurrence, WorkKind]] = []
    for kind in lexicon.kinds:
        occurrences.extend((o, kind) for o in find(reading, _request_words(kind)))
    if not occurrences:
        return None
    occurrences.sort(key=lambda pair: (pair[0].clause, pair[0].start))
    for occurrence, kind in occurrences:
        if negated(reading, occurrence):
            return Reply(_wont(ctx, kind))
    for occurrence, kind in occurrences:
        if held(reading, occurrence):
            return Reply(_hold(ctx, kind))
    calls = [o for o, k in occurrences if k.shape == "call"]
    if calls and len(calls) == len(occurrences) and not _GIVE_A_CALL.search(reading.text.padded):
        commanded = [o for o in calls if imperative(reading, o) or _after_start_verb(reading, o)]
        if not commanded or is_question(reading):
            if any(subject_before(reading, o) for o in calls) or not is_question(reading):
                return Reply("Okay — noted. I haven't started any calls.")
            return Reply(_offer(ctx))
    if reading.has("already") and not reading.has("already running"):
        return Reply("Okay — noted. I haven't started anything.")
    return None


def _who(ctx: Context) -> str:
    patients = ctx.workspace.patients_in(ctx.reading.words)
    return join(short_names(patients)) if patients else ""


def _wont(ctx: Context, kind: WorkKind) -> str:
    who = _who(ctx)
    group = ctx.workspace.group_in(ctx.reading.text)
    if kind.shape == "call":
        whom = who or ("the patients who haven't finished onboarding" if group else "anyone")
        text = f"Okay — I won't call {whom}."
    elif kind.shape == "prior_auth":
        text = "Okay — I won't file that prior authorization" + (f" for {who}" if who else "")
        text += "."
    else:
        text = "Okay — I won't start that."
    running = [f for f in ctx.active if f.kind is kind]
    if who and running:
        ids = {p.id for p in ctx.workspace.patients_in(ctx.reading.words)}
        running = [f for f in running if any(p.id in ids for p in f.patients)]
    if running:
        text += (
            " Nothing I've already started was touched; if you want something stopped, "
            "say which — for example, “cancel "
            + (f"{who}'s {kind.label}" if who else f"the {kind.plural}")
            + "”."
        )
    return text


def _hold(ctx: Context, kind: WorkKind) -> str:
    who = _who(ctx)
    if kind.shape == "call":
        what = f"calling {who}" if who else "the calls"
    elif kind.shape == "prior_auth":
        what = "the prior authorization" + (f" for {who}" if who else "")
    else:
        what = "that"
    running = [f for f in ctx.active if f.kind is kind]
    if who:
        ids = {p.id for p in ctx.workspace.patients_in(ctx.reading.words)}
        running = [f for f in running if any(p.id in ids for p in f.patients)]
    if running:
        return (
            f"Okay — I won't start anything new. What's already running keeps going (I can't "
            f"pause it); say “cancel {who + chr(39) + 's ' if who else 'the '}{kind.label}” if "
            "you want it stopped."
        )
    return f"Okay — I'll hold off on {what}. Just tell me when, and I'll start it then."


_DOING_VERBS = frozenset(
    [
        "do",
        "make",
        "start",
        "get",
        "begin",
        "kick",
        "run",
        "set",
        "chase",
        "follow",
        "give",
        "arrange",
    ]
)


def _after_start_verb(reading: Reading, at: Occurrence) -> bool:
    """Whether a noun ("the onboarding calls") is the object of a commanded verb."""
    words = reading.clauses[at.clause]
    lead = lead_length(words[: at.start])
    return lead < at.start and words[lead] in _DOING_VERBS


def _offer(ctx: Context) -> str:
    who = _who(ctx)
    if who:
        return f"Just say the word and I'll call {who} — for example, “call {who}”."
    return "Just say the word and I'll make the call — for example, “call Bob”."


# -- explaining ---------------------------------------------------------------------------


def explain(ctx: Context) -> Action | None:
    """What a prior authorization is, when asked."""
    kind = ctx.workspace.lexicon.kind("prior_auth")
    reading = ctx.reading
    if kind is None or not reading.has(*kind.nouns, "covered", "coverage", "cover"):
        return None
    if not (reading.text.starts(*EXPLAIN_LEADS) or is_question(reading)):
        return None
    if lead_length(reading.clauses[0]) and reading.has("can you", "could you", "can we"):
        return None
    return Reply(
        "A prior authorization is the insurer's OK before it covers a medication: we send "
        "the prescription and the clinical reasons, and the payer decides, usually within "
        "a few days. I can start one in the background — just tell me the medication and "
        "the patient, for example “prior auth for Ozempic for Dana”."
    )


# -- prior authorizations -----------------------------------------------------------------


def _medicine(ctx: Context) -> str | None:
    """The medicine the turn names, written as it should be; ``None`` if none."""
    words = (*ctx.reading.words, *ctx.hint)
    known = ctx.workspace.medicines_in(words)
    if known:
        word = known[0]
        return capital(word) if word in ctx.workspace.lexicon.brands else word
    names = ctx.workspace.names
    kind = ctx.workspace.lexicon.kind("prior_auth")
    noun_words = {w for n in (kind.names if kind else ()) for w in n.split()}
    for i, word in enumerate(words[:-1]):
        if word in {"for", "on"}:
            candidate = words[i + 1]
            if (
                candidate not in FILLER
                and candidate not in names
                and candidate not in noun_words
                and len(candidate) > 2
                and candidate.isalpha()
            ):
                return ctx.reading.text.original_word(candidate)
    return None


def _medicine_name(entry: str) -> str:
    """A chart's medication entry as people say it: the brand if it has one."""
    brand = re.search(r"\((\w+)\)", entry)
    return brand.group(1) if brand else entry.split()[0]


def prior_auth(ctx: Context) -> Action | None:
    """A prior authorization for the medicine named, filed in the background."""
    kind = ctx.workspace.lexicon.kind("prior_auth")
    if kind is None:
        return None
    reading = ctx.reading
    named_medicine = bool(ctx.workspace.medicines_in(reading.words))
    if not (reading.has(*kind.nouns) or (named_medicine and reading.has(*kind.verbs))):
        return None
    if is_question(reading):
        return None
    medicine = _medicine(ctx)
    patients = ctx.workspace.patients_in((*reading.words, *ctx.hint))
    patient = patients[0] if patients else None
    if medicine is None:
        if patient is not None and patient.medications:
            meds = [_medicine_name(m) for m in patient.medications]
            return Reply(
                f"Which medication is {first_name(patient.name)}'s prior authorization for — "
                f"{join(meds).replace(' and ', ' or ')}?"
            )
        return Reply("Which medication is the prior authorization for?")
    agent = _helper(ctx, kind.tool)
    if agent is None:
        return Reply("None of our agents can file prior authorizations, I'm afraid.")
    for running in ctx.active:
        if running.kind is kind and medicine.lower() in running.medicines:
            same = patient is None or any(p.id == patient.id for p in running.patients)
            if same and (patient is not None or not running.patients):
                who = f" for {first_name(patient.name)}" if patient else ""
                return Reply(
                    f"The prior auth for {medicine}{who} is already in progress — I'll let "
                    "you know as soon as the payer decides."
                )
    args: dict[str, Any] = {"medication": medicine}
    whose = ""
    title = f"Prior auth: {medicine}"
    if patient is not None:
        args["patient_id"] = patient.id
        whose = f" for {first_name(patient.name)}"
        title += f" for {patient_label(patient, ctx.workspace.patients)}"
    if reading.has(*ctx.workspace.lexicon.urgent):
        args["urgent"] = True
    return Delegate(
        text=f"Let me start that in the background — I'll file the prior authorization for "
        f"{medicine}{whose}"
        + (", marked urgent," if args.get("urgent") else "")
        + " and let you know as soon as the payer decides.",
        assignments=(
            Assignment(
                agent_id=agent.id,
                title=title,
                subject=medicine,
                instructions=f"Get a prior authorization for {medicine}"
                + (f" for {patient.name}." if patient is not None else ".")
                + (" It is urgent." if args.get("urgent") else ""),
                tool=kind.tool,
                args=args,
            ),
        ),
        rollup=False,
    )


# -- calls ----------------------------------------------------------------------------------


def outreach(ctx: Context) -> Action | None:
    """Calls to the patients named, or to a group ("the onboarding stragglers")."""
    kind = ctx.workspace.lexicon.kind("call")
    if kind is None:
        return None
    reading = ctx.reading
    verbs = [o for o in find(reading, kind.verbs) if imperative(reading, o)]
    verbs += [o for o in find(reading, tuple(_DOING_VERBS)) if imperative(reading, o)]
    given = _GIVE_A_CALL.search(reading.text.padded) is not None
    if not given and not (verbs and reading.has(*kind.verbs, *kind.nouns)):
        return None
    if is_question(reading):
        return None
    group = ctx.workspace.group_members(reading.text)
    named = ctx.workspace.patients_in(reading.words)
    purpose = "follow-up"
    if named:
        targets = named
    elif group is not None:
        targets, purpose = group[1], group[0].name
        if not targets:
            return Reply(f"Everyone has finished {group[0].name} — there's nobody to call.")
    elif reading.has(*EVERYONE):
        return Reply(
            f"Do you want us to call all {len(ctx.workspace.patients)} patients, or just "
            "the ones who haven't finished onboarding?"
        )
    else:
        return _nobody_to_call(ctx)
    agent = _helper(ctx, kind.tool)
    if agent is None:
        return Reply("None of our agents can make phone calls, I'm afraid.")
    busy = {p.id for f in ctx.active if f.kind is kind for p in f.patients}
    already = [p for p in targets if p.id in busy]
    targets = [p for p in targets if p.id not in busy]
    if not targets:
        return Reply(
            f"I'm already calling {join(short_names(already))} — I'll let you know how it goes."
        )
    names = short_names(targets)
    about = f"about finishing {purpose}" if purpose != "follow-up" else "to follow up"
    assignments = tuple(
        Assignment(
            agent_id=agent.id,
            title=f"Call {patient_label(p, ctx.workspace.patients)}",
            subject=short,
            instructions=f"Call {p.name} {about}, and report how it went.",
            tool=kind.tool,
            args={"patient_id": p.id, "purpose": purpose},
        )
        for p, short in zip(targets, names, strict=True)
    )
    also = f" ({join(short_names(already))} I'm already calling)" if already else ""
    return Delegate(
        text=f"I'll have our outreach team call {join(names)} in the background{also} — I'll "
        "let you know how it goes.",
        assignments=assignments,
        rollup=len(assignments) > 1,
    )


def _nobody_to_call(ctx: Context) -> Reply:
    known = ctx.workspace.names.keys() | FILLER
    strangers = [
        ctx.reading.text.original_word(w)
        for w in ctx.reading.words
        if w not in known and w.isalpha() and ctx.reading.text.original_word(w)[:1].isupper()
    ]
    if strangers:
        return Reply(
            f"I don't have a patient called “{strangers[0]}” in the directory — who should I call?"
        )
    return Reply("I can call our patients — who should I call? For example, “call Bob”.")


# -- records --------------------------------------------------------------------------------


def _fields(ctx: Context) -> list[str]:
    return [field for field in FIELDS if ctx.reading.has(*FIELD_WORDS[field])]


def _count(words: Sequence[str]) -> int | None:
    for word in words:
        if word in NUMBERS:
            return NUMBERS[word]
        if word.isdigit() and 1 < int(word) <= 20:
            return int(word)
    return None


def records(ctx: Context) -> Action | None:
    """Chart lookups: one inline, or several in parallel for a cross-referenced summary."""
    kind = ctx.workspace.lexicon.kind("records")
    if kind is None:
        return None
    reading = ctx.reading
    asked = _fields(ctx)
    crossing = reading.has(*CROSS_WORDS)
    if not (reading.has(*RECORD_WORDS) or asked or crossing):
        return None
    patients = ctx.workspace.patients
    named = ctx.workspace.patients_in(reading.words)
    how_many = _count(reading.words)
    group = ctx.workspace.group_members(reading.text)
    charts = reading.has("record", "records", "chart", "charts", "file", "files")
    if named:
        targets = named
    elif group is not None:
        targets = group[1]
    elif how_many is not None and charts:
        # "five patients' charts": the first who have full charts.
        charted = [p for p in patients if p.onboarding_complete]
        targets = (charted + [p for p in patients if p not in charted])[:how_many]
    elif reading.has(*EVERYONE):
        targets = list(patients)
    else:
        if reading.has("look up", "lookup", "pull up", "record", "records", "chart", "charts"):
            return Reply("Whose records should I look up?")
        return None
    if not targets:
        return Reply("There's nobody in the directory that fits — no records to look up.")
    if len(targets) == 1 and not crossing and kind.tool in ctx.turn.agent.tools:
        patient = targets[0]
        return UseTool(
            kind.tool,
            {"patient_id": patient.id, "fields": asked},
            title=f"Records: {patient_label(patient, patients)}",
            subject=first_name(patient.name),
        )
    helper = _helper(ctx, kind.tool)
    if helper is None:
        return Reply("None of our agents can look up records, I'm afraid.")
    names = short_names(targets)
    assignments = tuple(
        Assignment(
            agent_id=helper.id,
            title=f"Records: {patient_label(p, patients)}",
            subject=short,
            instructions=f"Look up {p.name}'s chart.",
            tool=kind.tool,
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

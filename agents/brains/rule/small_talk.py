"""The replies to everything that asks for no work: help, hours, thanks, greetings —
and, when the brain truly cannot tell, what it can do, with an example that fits what
was said (the patient named, the work running, the team's own examples)."""

from __future__ import annotations

from agents.brains import Reply
from agents.brains.rule.context import Context
from agents.brains.rule.sentences import lower_first
from agents.demo.records import first_name

CLINIC_HOURS = (
    "We're open Monday to Friday, 8 am to 6 pm, and Saturday 9 am to 1 pm; closed Sundays."
)
FALLBACK = "Sorry, I didn't catch that."


def small_talk(ctx: Context) -> Reply:
    """A reply to a turn no intent claimed; :data:`FALLBACK` and an example if nothing fits."""
    return known_small_talk(ctx) or Reply(f"{FALLBACK} {example_for(ctx)}")


def known_small_talk(ctx: Context) -> Reply | None:
    """The reply to help, hours, thanks, greetings and the like; ``None`` for anything else."""
    reading, turn = ctx.reading, ctx.turn
    text = reading.text
    words = set(reading.words)
    if text.has("what can you do", "what do you do", "how can you help", "who are you") or (
        text.has("help") and len(words) <= 4
    ):
        team = [a for a in turn.team if a.id != turn.agent.id]
        helpers = "; ".join(f"{a.name} — {lower_first(a.description)}" for a in team)
        kinds = ctx.workspace.lexicon.kinds
        if kinds:
            intro = (
                "I answer questions and look up charts myself, and hand slow work to the team "
                "in the background while we keep talking: calling patients (say, everyone who "
                "hasn't finished onboarding), prior authorizations, and cross-referencing "
                "several records. Ask me how it's going any time, add instructions, or cancel."
            )
        else:
            intro = (
                "I hand work to the team in the background while we keep talking; ask me how "
                "it's going any time, add instructions, or cancel."
            )
        return Reply(intro + (f" The team: {helpers.rstrip('.')}." if helpers else ""))
    if text.has("hours", "open", "opening", "close", "closing", "closed", "what time"):
        return Reply(CLINIC_HOURS)
    if text.has("thank", "thanks", "thx", "appreciate", "cheers", "ty"):
        return Reply("You're welcome! Anything else I can do?")
    if text.has("bye", "goodbye", "that is all", "that all", "see you"):
        return Reply("Take care! Anything still running will be waiting for you here.")
    if text.has("never mind", "nevermind", "nothing", "forget it", "sorry wrong", "ok", "okay"):
        return Reply("No problem.")
    for kind in ctx.workspace.unavailable:
        if text.has(*kind.verbs, *kind.nouns):
            return Reply(f"None of our agents can do {kind.plural}, I'm afraid.")
    greetings = {"hi", "hello", "hey", "morning", "afternoon", "evening", "howdy", "yo"}
    if words & greetings or text.has("how are you"):
        return Reply("Hi! How can I help you today?")
    return None


def example_for(ctx: Context) -> str:
    """What the brain can do, put as examples that fit what was said."""
    patients = ctx.workspace.patients_in(ctx.reading.words)
    lexicon = ctx.workspace.lexicon
    running = ctx.active
    examples: list[str] = []
    if patients and lexicon.kinds:
        name = first_name(patients[0].name)
        mine = [f for f in running if any(p.id == patients[0].id for p in f.patients)]
        if mine and mine[0].kind is not None:
            label = mine[0].kind.label
            examples += [f"“how's {name}'s {label} going?”", f"“cancel {name}'s {label}”"]
        if lexicon.kind("call"):
            examples.append(f"“call {name}”")
        if lexicon.kind("prior_auth"):
            meds = [m.split()[0] for m in patients[0].medications]
            examples.append(f"“prior auth for {meds[0] if meds else 'Ozempic'} for {name}”")
        if lexicon.kind("records"):
            examples.append(f"“what's {name}'s date of birth?”")
        return f"For {name} I can, for example: {', '.join(examples[:3])}."
    if running:
        first = running[0]
        who = first_name(first.patients[0].name) if first.patients else ""
        label = first.kind.label if first.kind else "task"
        ref = f"{who}'s {label}" if who else f"the {label}"
        return (
            f"About the work that's running you can ask “how's {ref} going?”, add to it "
            f"(“tell {ref} it's urgent”) or stop it (“cancel {ref}”)."
        )
    if ctx.turn.patient_scope is not None:
        # A patient (or caller) is never shown examples that name other patients.
        return (
            "I can look up your own chart, start a prior authorization for you, and check "
            "on or cancel anything I've started for you."
        )
    team_examples = [
        f"“{a.examples[0]}”" for a in ctx.turn.team if a.examples and a.id != ctx.turn.agent.id
    ]
    if team_examples:
        return f"You could say, for example, {' or '.join(team_examples[:3])}."
    if lexicon.kinds:
        return (
            "I can call patients (“call everyone who hasn't finished onboarding”), start prior "
            "authorizations (“prior auth for Ozempic for Dana”), and look up or "
            "cross-reference records (“what's Evan's phone number?”) — and check on, update "
            "or cancel anything I've started."
        )
    helpers = [a.name for a in ctx.turn.team if a.id != ctx.turn.agent.id]
    if helpers:
        return f"Tell me what you need and I'll hand it to {' or '.join(helpers[:3])}."
    return "Tell me what you need."

"""Deciding the :data:`~agents.brains.Action` for a user turn.

The intents are tried in an order that settles their collisions and puts safety
first: "don't cancel it" keeps work going before anything reads "cancel"; cancelling
and instructions come before status ("tell the calls to stop" is a cancel, "how are
the calls going?" a status question); all of these come before new work, and new work
is started only when commanded — never under a negation ("don't call Bob"), a hold
("hold off on calling Bob", "not yet") or as a report ("I'll call Bob myself").

Work already started is named only from :attr:`Turn.tasks <agents.brains.Turn.tasks>`
(see :mod:`.references`): a turn about one patient never touches another's task, and
a turn that fits several tasks asks which ("Dana's or Hana's?"). The answer comes as
the next turn; it is read together with the request it answers, found in the
transcript, so no state outlives the conversation's own record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from agents.brains import (
    Action,
    Cancel,
    CheckStatus,
    Instruct,
    Reply,
    Turn,
    VerifyCaller,
    VerifyFirst,
)
from agents.brains.rule.context import Ask, Context, nothing_for, which
from agents.brains.rule.grammar import find, is_question, negated
from agents.brains.rule.instructions import parse_instruction
from agents.brains.rule.lexicon import Lexicon
from agents.brains.rule.matching import PatientIndex
from agents.brains.rule.new_work import explain, forbidden, outreach, prior_auth, records
from agents.brains.rule.phrasing import title_label
from agents.brains.rule.reading import Reading, Workspace
from agents.brains.rule.references import ALL_WORDS, PRONOUNS, TaskFacts, named_in, task_facts
from agents.brains.rule.sentences import capital
from agents.brains.rule.small_talk import known_small_talk, small_talk
from agents.brains.rule.team import delegate_to_team
from agents.brains.rule.vocabulary import (
    CANCEL_PHRASES,
    FIELD_WORDS,
    FILLER,
    KEEP_GOING,
    STATUS_STRONG,
    STATUS_WEAK,
)
from agents.models import MessageRole
from agents.verification import read_identity

Intent = Callable[[Context], Action | None]
"""Recognises one intent: its action for the turn, or ``None`` if the turn is not it."""

_NEGATIVE_ANSWERS = frozenset(
    ["neither", "none", "no", "nope", "nah", "nothing", "leave", "forget", "cancel_none", "keep"]
)
_ANSWER_WORDS = frozenset(
    [
        "the",
        "one",
        "ones",
        "for",
        "s",
        "both",
        "all",
        "either",
        "first",
        "second",
        "last",
        "latest",
        "newer",
        "older",
        "please",
        "yes",
        "yeah",
        "yep",
        "of",
        "them",
        "that",
        "this",
        "her",
        "his",
        "request",
        "pa",
        "call",
        "prior",
        "auth",
        "just",
        "only",
    ]
)


def decide(turn: Turn, workspace: Workspace) -> Action:
    """What to do about one user turn, reading *turn* against *workspace*."""
    reading = workspace.read(turn.text)
    if not reading.words:
        return Reply("I'm here — what can I do for you?")
    facts = tuple(task_facts(t, workspace) for t in turn.tasks)
    pending = _pending_request(turn)
    if pending is not None and _is_answer(reading, workspace):
        if set(reading.words) & _NEGATIVE_ANSWERS or reading.has("never mind", "leave them"):
            return Reply("Okay — I'll leave everything as it is.")
        earlier = Context(turn, workspace, workspace.read(pending), facts, hint=reading.words)
        action = _first(earlier)
        if action is not None:
            return action
    ctx = Context(turn, workspace, reading, facts)
    return _first(ctx) or small_talk(ctx)


def decide_for_caller(turn: Turn, workspace: Workspace) -> Action:
    """What to do about a turn of a phone caller not yet verified: check who they say
    they are, answer what needs no record (hours, help, greetings), and hold the rest
    until they are verified."""
    identity = read_identity(turn.text)
    if identity is not None:
        return VerifyCaller(identity.name, identity.date_of_birth)
    reading = workspace.read(turn.text)
    if not reading.words:
        return Reply("I'm here — what can I do for you?")
    ctx = Context(turn, workspace, reading, ())
    if _first(ctx) is not None:
        return VerifyFirst()
    # Only what surely needs no record is answered; anything else may be about one.
    return known_small_talk(ctx) or VerifyFirst()


def _first(ctx: Context) -> Action | None:
    for intent in _INTENTS:
        action = intent(ctx)
        if action is not None:
            return action
    return None


def _pending_request(turn: Turn) -> str | None:
    """The person's request the brain asked about last turn, if it asked."""
    lines = turn.transcript[:-1]
    if len(lines) < 2:
        return None
    question, request = lines[-1], lines[-2]
    if question.role is not MessageRole.AGENT or not question.text.rstrip().endswith("?"):
        return None
    if request.role is not MessageRole.USER:
        return None
    return request.text


def _is_answer(reading: Reading, workspace: Workspace) -> bool:
    """Whether a turn only answers a question ("Dana's", "both", "the Mounjaro one")."""
    if len(reading.words) > 8:
        return False
    known = workspace.names.keys() | workspace.medicines | _ANSWER_WORDS | _NEGATIVE_ANSWERS
    known |= {w for k in workspace.lexicon.kinds for n in k.names for w in n.split()}
    return all(w in known or w in FILLER for w in reading.words) or reading.has("never mind")


# -- keeping work going ---------------------------------------------------------------


def _keep_going(ctx: Context) -> Action | None:
    reading = ctx.reading
    cancels = find(reading, CANCEL_PHRASES)
    live = [c for c in cancels if not negated(reading, c) or c.phrase == "do not bother"]
    if cancels and not live:
        return _leave_running(ctx)
    if not live and (reading.has(*KEEP_GOING) or _KEEP.search(reading.text.padded)):
        return _leave_running(ctx)
    return None


_KEEP = re.compile(
    r" (?:keep|leave|let) (?:\w+ ){0,4}(?:going|running|run|alone|be|finish|continue) "
)


def _leave_running(ctx: Context) -> Reply:
    if not ctx.active:
        return Reply("Okay — nothing's running, and I won't cancel anything.")
    return Reply("Okay — I'll let it keep going.")


# -- cancelling -----------------------------------------------------------------------


_KEEP_WORDS = ("keep", "leave", "except", "apart from", "other than", "not the", "save")


def _cancel(ctx: Context) -> Action | None:
    reading = ctx.reading
    live = [
        c
        for c in find(reading, CANCEL_PHRASES)
        if not negated(reading, c) or c.phrase == "do not bother"
    ]
    if not live:
        return None
    if all(c.phrase in {"never mind", "nevermind", "forget it"} for c in live) and (
        len(reading.words) <= 3 and not ctx.hint
    ):
        return None  # "never mind" alone takes back what was said, not the work
    target: list[str] = []
    excluding: list[str] = []
    for c, words in enumerate(reading.clauses):
        text = f" {' '.join(words)} "
        if not any(o.clause == c for o in live) and any(f" {k} " in text for k in _KEEP_WORDS):
            excluding.extend(words)
        else:
            target.extend(words)
    if not ctx.facts:
        return Reply("There's no background work running, so there's nothing to cancel.")
    if _foreign_object(ctx, target, live[0].phrase):
        return None
    found = ctx.resolve(target, excluding=excluding)
    if found.missing is not None:
        return nothing_for(found.missing, "cancel", any_running=bool(ctx.active))
    running = [f for f in found.tasks if f.active]
    if not running:
        if found.tasks:
            done = found.tasks[0].task
            return Reply(
                f"{capital(title_label(done.title))} has already finished, so there's "
                "nothing to cancel."
            )
        return Reply("There's no background work running, so there's nothing to cancel.")
    if len(running) == 1 or found.named.plural:
        return Cancel(tuple(f.task.id for f in running))
    return which(running, "cancel")


def _foreign_object(ctx: Context, words: Sequence[str], verb: str) -> bool:
    """Whether the words after a cancel verb name something that is not our work
    ("cancel my appointment", "stop taking metformin")."""
    allowed = ctx.workspace.names.keys() | ctx.workspace.medicines | ALL_WORDS | PRONOUNS
    allowed |= {w for k in ctx.workspace.lexicon.kinds for n in k.names for w in n.split()}
    allowed |= {w for g in ctx.workspace.lexicon.groups for n in g.phrases for w in n.split()}
    allowed |= {w for g in ctx.workspace.lexicon.groups for n in g.nicknames for w in n.split()}
    allowed |= {w for f in ctx.facts for w in f.keywords}
    allowed |= set(verb.split()) | set(CANCEL_WORDS_ALL) | {"others", "rest", "other", "up"}
    return any(w not in allowed and w not in FILLER for w in words)


CANCEL_WORDS_ALL = frozenset(
    [
        "cancel",
        "stop",
        "abort",
        "halt",
        "kill",
        "scrap",
        "withdraw",
        "terminate",
        "drop",
        "quit",
        "forget",
        "mind",
        "bother",
        "call",
        "off",
        "hang",
        "up",
        "calling",
        "phoning",
        "ringing",
        "pull",
        "plug",
        "stand",
        "down",
        "shut",
    ]
)


# -- instructions ---------------------------------------------------------------------


def _instruct(ctx: Context) -> Action | None:
    reading = ctx.reading
    parsed = parse_instruction(reading.original, lambda word: _names_a_task(ctx, word))
    urgent = reading.has(*ctx.workspace.lexicon.urgent)
    if parsed is None:
        if not (urgent and _bare_urgency(reading)):
            return None
        ref_words: Sequence[str] = ()
        payload = reading.original.strip()
    else:
        if parsed.negated:
            return Reply("Okay — I won't pass anything on.")
        ref_words = Reading.of(parsed.ref, ctx.workspace).words if parsed.ref else ()
        payload = parsed.payload
        if set(ref_words) & {"me", "us"}:
            return None  # "tell me …", "let me know …": to the person, not a task
    if not ctx.facts:
        return (
            None
            if parsed is None
            else Reply("There's no background work running to pass that on to.")
        )
    found = ctx.resolve(ref_words)
    if found.missing is not None and ref_words:
        return nothing_for(found.missing, "pass that on to", any_running=bool(ctx.active))
    candidates = list(found.tasks) if found.missing is None else list(ctx.active)
    if len(candidates) > 1:
        # The payload's people narrow it down ("let the payer know Dana has run out").
        people = named_in(reading.words, ctx.workspace)
        if people.patients:
            ids = {p.id for p in people.patients}
            narrowed = [f for f in candidates if any(p.id in ids for p in f.patients)]
            candidates = narrowed or candidates
    running = [f for f in candidates if f.active]
    if not running:
        if candidates:
            return Reply(
                "That background task has already finished, so there's nothing to pass that "
                "on to — want me to start a new one?"
            )
        return None
    if len(running) > 1:
        return which(running, "pass that on to")
    return Instruct(running[0].task.id, payload)


_REF_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "her",
        "his",
        "their",
        "them",
        "him",
        "it",
        "this",
        "that",
        "they",
        "one",
        "request",
        "caller",
        "callers",
        "call",
        "calls",
        "pa",
        "prior",
        "auth",
        "authorization",
        "insurer",
        "payer",
        "plan",
    ]
)


def _names_a_task(ctx: Context, token: str) -> bool:
    """Whether *token* can be part of the words naming a task ("Dana's", "insurer")."""
    words = Reading.of(token, ctx.workspace).words
    if len(words) != 1:
        return False
    word = words[0]
    kinds = {w for k in ctx.workspace.lexicon.kinds for n in k.names for w in n.split()}
    return (
        word in _REF_WORDS
        or word in kinds
        or word in ctx.workspace.names
        or word in ctx.workspace.medicines
    )


def _bare_urgency(reading: Reading) -> bool:
    """ "It's urgent, she ran out yesterday": urgency with no request of its own."""
    first = reading.clauses[0]
    return (
        bool(first)
        and (
            first[0] in {"it", "this", "that", "urgent", "very", "super", "really"}
            or reading.has("is urgent", "it urgent", "this urgent")
        )
        and not is_question(reading)
    )


# -- status ---------------------------------------------------------------------------


def _status(ctx: Context) -> Action | None:
    reading = ctx.reading
    strong = reading.has(*STATUS_STRONG)
    question = is_question(reading)
    weak = reading.has(*STATUS_WEAK)
    if reading.has("how are you", "how are you doing", "how do you do"):
        return None
    checking = reading.has("check on", "check in on", "check up on", "check the", "chase up")
    asks = strong or (question and (weak or _names_work(ctx)))
    if not asks and not (checking and _names_work(ctx)):
        return None
    if not strong and question and _asks_permission(reading):
        return None
    if _names_fields(reading) and not strong and not reading.has(*_DECISIONS):
        return None  # "what's Dana's insurer?" is a lookup; "did the insurer approve it?" not
    if not ctx.facts:
        if reading.has("check on", "check in on") and _names_fields(reading):
            return None
        return Reply("There's no background work going on right now.")
    found = ctx.resolve(reading.words)
    if found.missing is not None:
        if reading.has("check on", "check in on") and _names_fields(reading):
            return None
        return Reply(
            f"I don't have anything running for “{found.missing}”, so there's no news on it."
        )
    tasks = list(found.tasks)
    if not found.named.specific and not found.from_context and not found.named.pronoun:
        running = [f for f in tasks if f.active]
        tasks = running or tasks[:5]
    if not tasks:
        return Reply("There's no background work going on right now.")
    return CheckStatus(tuple(f.task.id for f in tasks))


_DECISIONS = (
    "approve",
    "approved",
    "deny",
    "denied",
    "decide",
    "decided",
    "decision",
    "through",
    "back",
    "done",
    "finished",
    "yet",
    "say",
    "said",
)


def _team(ctx: Context) -> Action | None:
    """Work no lexicon names: read against the team's own agents and tools."""
    index = PatientIndex(ctx.workspace.patients)
    return delegate_to_team(ctx.reading.text, ctx.turn, index)


def _names_fields(reading: Reading) -> bool:
    return any(reading.has(*FIELD_WORDS[f]) for f in FIELD_WORDS)


def _names_work(ctx: Context, *, kinds_only: bool = False) -> bool:
    named = named_in(ctx.reading.words, ctx.workspace)
    if kinds_only:
        return bool(named.kinds)
    if named.kinds or named.medicines:
        return True
    if named.patients and ctx.facts:
        ids = {p.id for p in named.patients}
        return any(any(p.id in ids for p in f.patients) for f in ctx.facts)
    return (
        named.pronoun
        and bool(ctx.facts)
        and ctx.reading.has(
            "done",
            "finished",
            "approved",
            "denied",
            "through",
            "back",
            "ready",
            "answer",
            "answered",
            "pick up",
            "picked up",
            "reached",
            "going",
            "decided",
        )
    )


def _asks_permission(reading: Reading) -> bool:
    return reading.has("should i", "should we", "do you think", "can i", "could i", "shall i")


_INTENTS: tuple[Intent, ...] = (
    _keep_going,
    _cancel,
    _instruct,
    _status,
    explain,
    forbidden,
    prior_auth,
    outreach,
    records,
    _team,
)
"""The intents, in the order that settles collisions between them (see the module)."""

__all__ = ["Ask", "Lexicon", "TaskFacts", "Workspace", "decide"]

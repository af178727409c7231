"""Deciding the :data:`~agents.brains.Action` for a user turn.

Each intent is recognised from keyword and phrase signals, checked in an order that
settles the usual collisions: instructions and cancellation before status ("tell the
calls to stop" is a cancellation, "how are the calls going?" a status question), both
before new work ("stop the calls" is no outreach), and small talk last. This module
holds the order and the intents about work already started; they only ever name
tasks found in :attr:`Turn.tasks <agents.brains.Turn.tasks>`, never invent one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agents.brains import Action, Cancel, CheckStatus, Instruct, Reply, TaskSummary, Turn
from agents.brains.rule.instructions import parse_instruction
from agents.brains.rule.matching import PatientIndex, active, fields, match_tasks
from agents.brains.rule.new_work import explain, outreach, prior_auth, records
from agents.brains.rule.sentences import join
from agents.brains.rule.small_talk import small_talk
from agents.brains.rule.team import delegate_to_team
from agents.brains.rule.text import Text, strip_lead
from agents.brains.rule.vocabulary import (
    CANCEL_PHRASES,
    CANCEL_WORDS,
    DELEGATION_LEADS,
    FILLER,
    KEEP_GOING,
    KIND_WORDS,
    RECORD_WORDS,
    STATUS_STRONG,
    STATUS_WEAK,
)
from agents.demo.payer import PRIOR_AUTH
from agents.demo.records import RECORDS_LOOKUP
from agents.demo.telephony import PHONE_CALL
from agents.ports import PatientDirectory

Intent = Callable[[Text, Turn, PatientIndex], Action | None]
"""Recognises one intent: its action for the turn, or ``None`` if the turn is not it."""


async def decide(turn: Turn, directory: PatientDirectory) -> Action:
    """What to do about one user turn; the workspace's patients come from *directory*."""
    text = Text.parse(turn.text)
    if not text.words:
        return Reply("I'm here — what can I do for you?")
    patients = await directory.list_patients(turn.agent.workspace_id)
    index = PatientIndex(tuple(sorted(patients, key=lambda p: p.name)))
    tools = {name for agent in turn.team for name in agent.tools} | set(turn.agent.tools)
    # A kind of work this workspace has no builtin tool for is asked last: its own
    # agents may do it ("call Bob" with a telephony tool of its own), and only if none
    # fits does the builtin intent answer (that none of the agents can).
    lacking: list[Intent] = []
    for intent in _INTENTS:
        needs = _NEEDS.get(intent)
        if needs is not None and needs not in tools:
            lacking.append(intent)
            continue
        action = intent(text, turn, index)
        if action is not None:
            return action
    # Not one of the demo's kinds of work: read it against the workspace's own agents.
    action = delegate_to_team(text, turn, index)
    for intent in lacking:
        if action is not None:
            break
        action = intent(text, turn, index)
    return action or small_talk(text, turn)


def _instruct(text: Text, turn: Turn, index: PatientIndex) -> Action | None:
    parsed = parse_instruction(turn.text)
    if parsed is None:
        return None
    payload = Text.parse(parsed.payload)
    if set(payload.words) <= CANCEL_WORDS | FILLER:
        # "tell the calls to stop" is a cancellation; "…, please" says nothing new.
        return None
    if parsed.ref is not None and Text.parse(parsed.ref).has(*CANCEL_PHRASES):
        return None  # "call off the calls, please"
    running = active(turn.tasks)
    if parsed.ref is None:
        # No task named: only unambiguous with exactly one running.
        match = match_tasks(text.words, turn.tasks)
        if match.tasks:
            targets = active(match.tasks) or list(match.tasks)
        elif len(running) == 1:
            targets = running
        elif running:
            return Reply(_which(running, "pass that on to"))
        else:
            return None
    else:
        match = match_tasks(Text.parse(parsed.ref).words, turn.tasks)
        if match.tasks:
            targets = list(match.tasks)
        elif match.unmatched:
            return _no_such_task(text, match.unmatched, "pass that on to")
        elif len(running) == 1:
            targets = running
        elif not running:
            return Reply("There's no background work running to pass that on to.")
        else:
            return Reply(_which(running, "pass that on to"))
    still_running = active(targets)
    if not still_running:
        return Reply(
            "That background task has already finished, so there's nothing to pass that on "
            "to — want me to start a new one?"
        )
    return Instruct(still_running[0].id, parsed.payload)


def _cancel(text: Text, turn: Turn, index: PatientIndex) -> Action | None:
    if not text.has(*CANCEL_PHRASES):
        return None
    if text.has(*KEEP_GOING):
        return Reply("Okay — I'll let it keep going.")
    match = match_tasks(text.words, turn.tasks)
    if not match.tasks and not match.generic:
        return None  # "stop taking metformin" names no background work
    if match.tasks:
        running = active(match.tasks)
        return Cancel(tuple(t.id for t in (running or match.tasks)))
    if match.unmatched:
        return _no_such_task(text, match.unmatched, "cancel")
    running = active(turn.tasks)
    if not running:
        return Reply("There's no background work running, so there's nothing to cancel.")
    if len(running) == 1 or match.named_all:
        return Cancel(tuple(t.id for t in running))
    return Reply(_which(running, "stop"))


def _status(text: Text, turn: Turn, index: PatientIndex) -> Action | None:
    strong = text.has(*STATUS_STRONG)
    weak = text.has(*STATUS_WEAK)
    if not (strong or weak) or text.has("how are you", "how are you doing"):
        return None
    lead = strip_lead(text.words)[:1]
    if not strong and lead and lead[0] in DELEGATION_LEADS:
        return None  # "call Alice and let me know how it goes"
    match = match_tasks(text.words, turn.tasks)
    entities = index.name_words() | index.medications() | KIND_WORDS
    named = [w for w in match.unmatched if w in entities]
    # A weak word alone ("results", "done") is a status question only when it points
    # at a task, or asks for updates without naming anything else.
    if not strong and not match.tasks and (named or not text.has("update", "updates")):
        return None
    if match.tasks:
        return CheckStatus(tuple(t.id for t in match.tasks))
    if named:
        if fields(text) or text.has(*RECORD_WORDS):
            return None  # "check on Dana's allergies" is a lookup
        return _no_such_task(text, tuple(named), "check on")
    if not turn.tasks:
        return Reply("There's no background work going on right now.")
    running = active(turn.tasks)
    return CheckStatus(tuple(t.id for t in (running or list(turn.tasks)[:5])))


def _no_such_task(text: Text, words: Sequence[str], verb: str) -> Reply:
    named = join([f"“{text.original_word(w)}”" for w in words[:3]])
    return Reply(
        f"I don't have any background task about {named} in this conversation, so there's "
        f"nothing to {verb}."
    )


def _which(tasks: Sequence[TaskSummary], verb: str) -> str:
    titles = join([f"“{t.title}”" for t in tasks[:6]])
    return f"Which one should I {verb}? I'm working on {titles}."


_INTENTS: tuple[Intent, ...] = (
    _instruct,
    _cancel,
    _status,
    explain,
    prior_auth,
    outreach,
    records,
)
"""The intents, in the order that settles collisions between them."""

_NEEDS: dict[Intent, str] = {
    explain: PRIOR_AUTH,
    prior_auth: PRIOR_AUTH,
    outreach: PHONE_CALL,
    records: RECORDS_LOOKUP,
}
"""The builtin tool each kind of new work needs; without it, the intent is not asked."""

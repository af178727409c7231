"""Finding the background tasks a turn means: by patient, medicine, kind of work, or a
pronoun resolved against the conversation.

A task's facts (its kind, its patients, its medicines, its keywords) come from its
title and subject and from the tools of the agent doing it. The words of a turn narrow
the tasks down, each named thing a hard filter: "the prior auth for Dana" never
matches Hana's. Where nothing is named ("it", "that one", "her request"), the
conversation decides: the most recent line that points at tasks — a reply about one
task, or a sentence naming a patient, a medicine or a kind of work that the tasks have.

Invariants: a resolution only ever returns tasks from the list it was given, and it
never widens what was named — a filter that leaves nothing reports what was missing
instead of falling back to everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.brains import TaskSummary, TranscriptLine
from agents.brains.rule.lexicon import WorkKind
from agents.brains.rule.reading import Reading, Workspace
from agents.brains.rule.text import Text, normalize, stem
from agents.brains.rule.vocabulary import FILLER
from agents.models import MessageRole, Patient

ALL_WORDS = frozenset(
    ["all", "every", "everything", "everyone", "everybody", "both", "each", "whole"]
)
PRONOUNS = frozenset(["it", "that", "this", "them", "they", "their", "those", "these", "one"])
PERSON_PRONOUNS = frozenset(["her", "him", "his", "she", "he", "hers"])
_GERUNDS = {"calling": "call", "phoning": "call", "ringing": "call", "dialing": "call"}


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What is known of one task for finding it again."""

    task: TaskSummary
    kind: WorkKind | None
    patients: tuple[Patient, ...]
    medicines: tuple[str, ...]
    keywords: frozenset[str]

    @property
    def active(self) -> bool:
        return not self.task.terminal


def task_facts(task: TaskSummary, workspace: Workspace) -> TaskFacts:
    """The facts of *task*, read from its title, its subject and its agent's tools.

    Read once per title, subject and agent (the workspace's bounded cache): a turn with
    a hundred tasks running reads none of them again.
    """
    key = (task.title, task.subject, task.agent_id)
    known = workspace.facts.get(key)
    if known is None:
        known = _read_facts(task, workspace)
        workspace.remember_facts(key, known)
    return TaskFacts(task, known.kind, known.patients, known.medicines, known.keywords)


def _read_facts(task: TaskSummary, workspace: Workspace) -> TaskFacts:
    words = normalize(f"{task.title} {task.subject}").split()
    agent = next((a for a in workspace.team if a.id == task.agent_id), None)
    kind = None
    if agent is not None:
        kinds = [k for k in workspace.lexicon.kinds if k.tool in agent.tools]
        kind = kinds[0] if len(kinds) == 1 else None
        if kind is None and kinds:
            kind = next((k for k in kinds if Text(task.title, tuple(words)).has(*k.nouns)), None)
    if kind is None:
        title = Text(task.title, tuple(words))
        kind = next((k for k in workspace.lexicon.kinds if title.has(*k.nouns)), None)
    keywords = {stem(w) for w in words if w not in FILLER}
    if agent is not None:
        keywords |= {stem(w) for w in normalize(agent.name).split() if w not in FILLER}
    return TaskFacts(
        task=task,
        kind=kind,
        patients=tuple(workspace.patients_in(words)),
        medicines=tuple(workspace.medicines_in(words)),
        keywords=frozenset(keywords),
    )


@dataclass(frozen=True, slots=True)
class Named:
    """What a turn's words name that can pick tasks out."""

    patients: tuple[Patient, ...]
    people: tuple[str, ...]
    """The words naming people, as written (for "nothing for Hana" replies)."""
    medicines: tuple[str, ...]
    kinds: tuple[WorkKind, ...]
    group: bool
    everything: bool
    plural: bool
    pronoun: bool
    person_pronoun: bool
    keywords: tuple[str, ...]
    members: tuple[str, ...] = ()
    """The ids of the patients in the group named, if one is."""
    unspecified: bool = False
    """ "one of them", "either": one is meant, but not which — never guessed."""

    @property
    def specific(self) -> bool:
        return bool(self.patients or self.medicines or self.kinds or self.keywords or self.group)


def named_in(words: Sequence[str], workspace: Workspace) -> Named:
    """What *words* name (see :class:`Named`)."""
    text = Text(" ".join(words), tuple(words))
    mentions = workspace.mentions(words)
    patients = tuple(p for m in mentions for p in m.patients)
    kinds = list(workspace.kinds_in(text))
    for word, shape in _GERUNDS.items():
        kind = workspace.lexicon.kind("call") if shape == "call" else None
        if word in words and kind is not None and kind not in kinds:
            kinds.append(kind)
    if text.has("hang up") and (call := workspace.lexicon.kind("call")) and call not in kinds:
        kinds.append(call)
    found_group = workspace.group_members(text)
    group = found_group is not None
    members = tuple(p.id for p in found_group[1]) if found_group else ()
    unspecified = text.has("one of", "either", "any one", "one or the other", "some of")
    plural_nouns = any(text.has(k.plural) for k in kinds) or text.has(
        "pas", "requests", "tasks", "ones", "jobs", "all of them", "both of them"
    )
    everything = bool(set(words) & ALL_WORDS)
    return Named(
        patients=patients,
        people=tuple(m.word for m in mentions),
        medicines=tuple(workspace.medicines_in(words)),
        kinds=tuple(kinds),
        group=group,
        everything=everything,
        plural=not unspecified and (everything or plural_nouns or len(mentions) > 1 or group),
        pronoun=bool(set(words) & PRONOUNS),
        person_pronoun=bool(set(words) & PERSON_PRONOUNS),
        keywords=(),
        members=members,
        unspecified=unspecified,
    )


@dataclass(frozen=True, slots=True)
class Resolution:
    """The tasks a turn points at, and how it pointed."""

    tasks: tuple[TaskFacts, ...]
    named: Named
    missing: str | None = None
    """What was named that none of the tasks has ("Hana", "Humira"), if anything."""
    from_context: bool = False

    @property
    def ambiguous(self) -> bool:
        return len(self.tasks) > 1 and not self.named.plural


def _filter(facts: Sequence[TaskFacts], named: Named) -> tuple[list[TaskFacts], str | None]:
    found = list(facts)
    if named.patients:
        wanted = set(p.id for p in named.patients)
        found = [f for f in found if any(p.id in wanted for p in f.patients)]
        if not found:
            return [], " and ".join(w.capitalize() for w in named.people) or "them"
    if named.members and not named.patients:
        ids = set(named.members)
        found = [f for f in found if any(p.id in ids for p in f.patients)]
        if not found:
            return [], "the patients who haven't finished"
    if named.medicines:
        meds = set(named.medicines)
        kept = [f for f in found if meds & set(f.medicines)]
        if not kept:
            return [], " and ".join(m.capitalize() for m in named.medicines)
        found = kept
    if named.kinds:
        kinds = set(id(k) for k in named.kinds)
        kept = [f for f in found if f.kind is not None and id(f.kind) in kinds]
        if not kept:
            return [], named.kinds[0].label
        found = kept
    return found, None


def _keyword_filter(facts: Sequence[TaskFacts], words: Sequence[str]) -> list[TaskFacts]:
    """Tasks sharing the most content words with *words* (for workspaces' own work)."""
    content = {stem(w) for w in words if w not in FILLER} - {""}
    content = {w for w in content if w not in FILLER}
    if not content:
        return []
    scores = [(f, len(content & f.keywords)) for f in facts]
    best = max((s for _, s in scores), default=0)
    return [f for f, s in scores if best and s == best]


def resolve(
    words: Sequence[str],
    facts: Sequence[TaskFacts],
    workspace: Workspace,
    transcript: Sequence[TranscriptLine] = (),
    *,
    excluding: Sequence[str] = (),
) -> Resolution:
    """The tasks among *facts* that *words* point at.

    *transcript* (oldest first, the current turn last) resolves pronouns and bare
    references; *excluding* holds words naming tasks to leave out ("but keep Hana's").
    """
    named = named_in(words, workspace)
    found, missing = _filter(facts, named)
    if missing is not None:
        return Resolution((), named, missing)
    from_context = False
    if not named.specific:
        keyworded = _keyword_filter(facts, words) if not workspace.lexicon.kinds else []
        if keyworded:
            found = keyworded
        elif (
            len(found) > 1
            and (named.pronoun or named.person_pronoun)
            and not (named.everything or named.unspecified)
        ):
            recent = _recent(found, workspace, transcript, people_only=named.person_pronoun)
            if recent:
                found, from_context = recent, True
    if excluding:
        left_out = named_in(excluding, workspace)
        if left_out.specific:
            drop, _ = _filter(found, left_out)
            found = [f for f in found if f not in drop]
    return Resolution(tuple(found), named, None, from_context)


def _recent(
    facts: Sequence[TaskFacts],
    workspace: Workspace,
    transcript: Sequence[TranscriptLine],
    *,
    people_only: bool,
) -> list[TaskFacts]:
    """The tasks the conversation last pointed at, among *facts*; empty if none."""
    by_id = {f.task.id: f for f in facts}
    for line in reversed(transcript[:-1]):
        if line.task_id is not None and not people_only:
            if line.task_id in by_id:
                return [by_id[line.task_id]]
            continue
        reading: Reading = workspace.read(line.text)
        named = named_in(reading.words, workspace)
        if people_only:
            named = Named(
                named.patients, named.people, (), (), False, False, False, False, False, ()
            )
            if not named.patients:
                continue
        if not named.specific:
            continue
        found, missing = _filter(facts, named)
        if found and missing is None:
            # A line of the person's naming several things speaks of them all; the
            # caller asks which one when it needs one.
            return found
        if line.role is MessageRole.USER and named.patients:
            return []
    return []

"""Reading a turn against the workspace: typos corrected, people, medicines and kinds
of work found, clauses and the negations that govern them.

Typos are corrected only towards the workspace's own vocabulary — its patients'
names, medicines, the lexicon's words, its agents' and tools' names — and only for
words that are not ordinary English ("even" never becomes "Evan", "data" never
"Dana"): one edit for words up to eight letters, two beyond, the first letter kept,
and never when two corrections tie.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.brains.rule.lexicon import Lexicon, PatientGroup, WorkKind, WorkShape
from agents.brains.rule.text import Text, normalize
from agents.brains.rule.vocabulary import (
    COMMON_WORDS,
    COMPLETIONS,
    FILLER,
    INTENT_WORDS,
    NEGATIONS,
)
from agents.models import AgentDefinition, Patient

_MAX_CACHE = 4096
"""Corrections and readings remembered per workspace: bounded, oldest dropped first."""


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance of *a* and *b*, or ``limit + 1`` past *limit*."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, previous2[j - 2] + 1)
            current[j] = best
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


@dataclass(frozen=True, slots=True)
class Mention:
    """A person named in a turn, and the patients it may mean (several: ambiguous)."""

    word: str
    patients: tuple[Patient, ...]


@dataclass(slots=True)
class Workspace:
    """What the brain knows of one workspace for reading turns: built once, reused.

    Holds bounded caches (corrections, readings), so a busy conversation reads each
    distinct sentence once.
    """

    lexicon: Lexicon
    patients: tuple[Patient, ...]
    team: tuple[AgentDefinition, ...]
    names: dict[str, tuple[Patient, ...]] = field(default_factory=dict)
    medicines: frozenset[str] = frozenset()
    unavailable: tuple[WorkKind, ...] = ()
    """The lexicon's kinds of work nobody on the team has the tool for."""
    insurers: tuple[str, ...] = ()
    """The patients' insurers' names, normalized: naming one names a prior auth."""
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    facts: OrderedDict[tuple[str, str, str], Any] = field(default_factory=OrderedDict)
    """What each task title says (see :func:`~.references.task_facts`), bounded."""
    _corrections: OrderedDict[str, str] = field(default_factory=OrderedDict)
    _readings: OrderedDict[str, Reading] = field(default_factory=OrderedDict)

    @classmethod
    def build(
        cls, lexicon: Lexicon, patients: Sequence[Patient], team: Sequence[AgentDefinition]
    ) -> Workspace:
        """Index *patients*, *lexicon* and *team* for reading; the lexicon's kinds of work
        apply only where someone on the team has their tool."""
        everything = lexicon
        lexicon = lexicon.for_tools(frozenset(t for a in team for t in a.tools))
        names: dict[str, list[Patient]] = {}
        for patient in patients:
            for part in dict.fromkeys(n.lower() for n in normalize(patient.name).split()):
                names.setdefault(part, []).append(patient)
        medicines = set(lexicon.medicines)
        for patient in patients:
            for entry in patient.medications:
                words = normalize(entry).split()
                if words:
                    medicines.add(words[0])
                medicines.update(w for w in words[1:3] if w.isalpha() and w in lexicon.brands)
        vocabulary: set[str] = set(names) | medicines | set(lexicon.words) | INTENT_WORDS
        for kind in lexicon.kinds:
            for phrase in (*kind.names, *kind.verbs):
                vocabulary.update(phrase.split())
        for group in lexicon.groups:
            for phrase in (*group.phrases, *group.nicknames):
                vocabulary.update(phrase.split())
        for phrase in lexicon.urgent:
            vocabulary.update(phrase.split())
        for agent in team:
            vocabulary.update(normalize(agent.name).split())
            for tool in agent.tools:
                vocabulary.update(normalize(tool.replace(".", " ").replace("_", " ")).split())
        insurers = tuple(
            sorted({normalize(p.insurer) for p in patients if p.insurer.strip()}, key=len)
        )
        for insurer in insurers:
            vocabulary.update(insurer.split())
        targets: dict[str, list[str]] = {}
        for word in vocabulary:
            if len(word) >= 4 and word.isalpha():
                targets.setdefault(word[0], []).append(word)
        return cls(
            lexicon=lexicon,
            patients=tuple(patients),
            team=tuple(team),
            names={k: tuple(v) for k, v in names.items()},
            medicines=frozenset(medicines),
            unavailable=tuple(k for k in everything.kinds if k not in lexicon.kinds),
            insurers=insurers,
            targets={k: tuple(sorted(v)) for k, v in targets.items()},
        )

    # -- words --------------------------------------------------------------------------

    def correct(self, word: str) -> str:
        """*word*, or the one vocabulary word it is a typo of."""
        if len(word) < 4 or not word.isalpha() or word in COMMON_WORDS or word in FILLER:
            return word
        cached = self._corrections.get(word)
        if cached is not None:
            return cached
        candidates = self.targets.get(word[0], ())
        if word in candidates:
            fixed = word
        else:
            limit = 1 if len(word) <= 8 else 2
            best, found = limit + 1, [word]
            for target in candidates:
                distance = edit_distance(word, target, limit)
                if distance < best:
                    best, found = distance, [target]
                elif distance == best and distance <= limit:
                    found.append(target)
            fixed = found[0] if best <= limit and len(found) == 1 else word
        self._corrections[word] = fixed
        if len(self._corrections) > _MAX_CACHE:
            self._corrections.popitem(last=False)
        return fixed

    def remember_facts(self, key: tuple[str, str, str], facts: Any) -> None:
        """Keep what a task's title says; the oldest is dropped past the bound."""
        self.facts[key] = facts
        if len(self.facts) > _MAX_CACHE:
            self.facts.popitem(last=False)

    def read(self, text: str) -> Reading:
        """*text* read against this workspace (cached)."""
        cached = self._readings.get(text)
        if cached is not None:
            self._readings.move_to_end(text)
            return cached
        reading = Reading.of(text, self)
        self._readings[text] = reading
        if len(self._readings) > _MAX_CACHE:
            self._readings.popitem(last=False)
        return reading

    # -- things named -------------------------------------------------------------------

    def mentions(self, words: Sequence[str]) -> list[Mention]:
        """The people *words* name, in order; a first and last name together are one."""
        found: list[Mention] = []
        skip = False
        for i, word in enumerate(words):
            if skip:
                skip = False
                continue
            patients = self.names.get(word)
            if not patients:
                continue
            if i + 1 < len(words) and words[i + 1] in self.names:
                both = tuple(p for p in patients if p in self.names[words[i + 1]])
                if both:
                    patients, skip = both, True
            if all(m.patients != patients for m in found):
                found.append(Mention(word, patients))
        return found

    def patients_in(self, words: Sequence[str]) -> list[Patient]:
        """The patients *words* name unambiguously, in order."""
        found: list[Patient] = []
        for mention in self.mentions(words):
            if len(mention.patients) == 1 and mention.patients[0] not in found:
                found.append(mention.patients[0])
        return found

    def medicines_in(self, words: Sequence[str]) -> list[str]:
        """The medicines *words* name, in order (lowercased)."""
        return list(dict.fromkeys(w for w in words if w in self.medicines))

    def kinds_in(self, text: Text) -> list[WorkKind]:
        """The kinds of work *text* names by a noun ("the PA", "the calls")."""
        found = [k for k in self.lexicon.kinds if text.has(*k.names)]
        auth = self.lexicon.kind("prior_auth")
        # "any word from Bluebridge?": a patient's insurer names the prior auth.
        if (
            auth is not None
            and auth not in found
            and any(text.has(i) or text.has(i.split()[0]) for i in self.insurers)
        ):
            found.append(auth)
        return found

    def kind_of_shape(self, shape: WorkShape) -> WorkKind | None:
        return self.lexicon.kind(shape)

    def group_members(self, text: Text) -> tuple[PatientGroup, list[Patient]] | None:
        """The group *text* names and who is in it: those without its flag, unless the
        sentence says the group has finished ("everyone who has finished onboarding")."""
        found = self.group_in(text)
        if found is None:
            return None
        group, nickname = found
        complete = (
            not nickname
            and not text.has(*NEGATIONS, "need to", "needs to", "have to")
            and text.has(*COMPLETIONS)
        )
        members = [p for p in self.patients if bool(getattr(p, group.flag, False)) == complete]
        return group, members

    def group_in(self, text: Text) -> tuple[PatientGroup, bool] | None:
        """The patient group *text* names, and whether by a nickname ("stragglers")."""
        for group in self.lexicon.groups:
            if text.has(*group.nicknames):
                return group, True
            if text.has(*group.phrases):
                return group, False
        return None


@dataclass(frozen=True, slots=True)
class Reading:
    """One sentence, read: its corrected words and its clauses."""

    original: str
    text: Text
    clauses: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, original: str, workspace: Workspace) -> Reading:
        """Read *original*: normalized, typos corrected, split into clauses."""
        clauses: list[tuple[str, ...]] = []
        for part in _split_clauses(original):
            words = tuple(workspace.correct(w) for w in normalize(part).split())
            if words:
                clauses.append(words)
        words = tuple(w for clause in clauses for w in clause)
        return cls(original, Text(original, words), tuple(clauses))

    @property
    def words(self) -> tuple[str, ...]:
        return self.text.words

    def has(self, *phrases: str) -> bool:
        return self.text.has(*phrases)


_CLAUSE_BREAKS = ",;:!?()—–"


def _split_clauses(text: str) -> list[str]:
    """*text* cut at punctuation that ends a clause (and at " - ", " but ")."""
    parts: list[str] = []
    current: list[str] = []
    for char in text.replace(" - ", " — ").replace(". ", " — "):
        if char in _CLAUSE_BREAKS:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    split: list[str] = []
    for part in parts:
        pieces = f" {part} ".replace(" but ", " \x00 ").replace(" except ", " \x00 except ")
        split.extend(p for p in pieces.split("\x00") if p.strip())
    return split


def words_of(texts: Iterable[str]) -> set[str]:
    """Every normalized word of *texts*."""
    return {w for t in texts for w in normalize(t).split()}

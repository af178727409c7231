"""Finding what a turn names: the workspace's patients and medicines, chart fields,
and the background tasks the agent already started.

A task is found again by its keywords: the stemmed words of its title and subject, so
"the calls", "phoning Alice" and "Call Alice Moreno" meet on "call" and "alice".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agents.brains import TaskSummary
from agents.brains.rule.sentences import capital
from agents.brains.rule.text import Text, normalize, stem
from agents.brains.rule.vocabulary import (
    ALL_WORDS,
    BRANDS,
    COMPLETIONS,
    FIELD_WORDS,
    FILLER,
    GENERIC_REFS,
    GENERICS,
    NEGATIONS,
    NUMBERS,
    ONBOARDING,
)
from agents.demo.records import FIELDS, medication_key
from agents.models import Patient

# -- patients and medicines ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatientIndex:
    """The workspace's patients, indexed for finding them in a sentence."""

    patients: tuple[Patient, ...]

    def named_in(self, text: Text) -> list[Patient]:
        """Patients named by first or last name, in the order they are mentioned."""
        found: list[Patient] = []
        for word in text.words:
            for patient in self.patients:
                names = [n.lower() for n in patient.name.split()]
                if word in names and patient not in found:
                    found.append(patient)
        return found

    def name_words(self) -> set[str]:
        """Every first and last name, lowercased."""
        return {n.lower() for p in self.patients for n in p.name.split()}

    def medications(self) -> set[str]:
        """The medicines known by name: common ones, and whatever a patient takes."""
        known = set(BRANDS | GENERICS)
        for patient in self.patients:
            for entry in patient.medications:
                known.add(medication_key(entry))
                known.update(w.lower() for w in re.findall(r"\((\w+)\)", entry))
        return known


def onboarding_group(text: Text, patients: Sequence[Patient]) -> list[Patient] | None:
    """The patients an onboarding phrase means, or ``None`` if none is used."""
    if not text.has(*ONBOARDING):
        return None
    if not text.has(*NEGATIONS) and text.has(*COMPLETIONS):
        return [p for p in patients if p.onboarding_complete]
    return [p for p in patients if not p.onboarding_complete]


def medication(text: Text, index: PatientIndex) -> str | None:
    """The medicine *text* names, as it should be written back; ``None`` if none."""
    known = index.medications()
    for word in text.words:
        if word in known:
            return capital(word) if word in BRANDS else word
    # An unknown medicine: the word after "for" or "on" that is not a patient or filler.
    names = index.name_words()
    words = text.words
    for i, word in enumerate(words[:-1]):
        if word in {"for", "on"}:
            candidate = words[i + 1]
            if candidate not in FILLER and candidate not in names and len(candidate) > 2:
                return text.original_word(candidate)
    return None


def fields(text: Text) -> list[str]:
    """The chart fields *text* asks about, in :data:`~agents.demo.records.FIELDS` order."""
    return [field for field in FIELDS if text.has(*FIELD_WORDS[field])]


def count(text: Text) -> int | None:
    """How many ("five patients' charts"), if *text* says."""
    for word in text.words:
        if word in NUMBERS:
            return NUMBERS[word]
        if word.isdigit() and 1 < int(word) <= 20:
            return int(word)
    return None


# -- tasks already started --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskMatch:
    """Which tasks the person's words point at, and what they named that matched none."""

    tasks: tuple[TaskSummary, ...]
    unmatched: tuple[str, ...]
    named_all: bool
    generic: bool


def _keywords(task: TaskSummary) -> set[str]:
    return {stem(w) for w in normalize(f"{task.title} {task.subject}").split()}


def match_tasks(words: Iterable[str], tasks: Sequence[TaskSummary]) -> TaskMatch:
    """The tasks sharing the most keywords with *words* (all ties); none if none do."""
    words = list(words)
    content = [stem(w) for w in words if w not in FILLER]
    # Again after stemming: "lets" is no filler, but its stem "let" is.
    content = [w for w in content if w not in FILLER]
    keywords = [(task, _keywords(task)) for task in tasks]
    scores = [(task, len(set(content) & kw)) for task, kw in keywords]
    best = max((s for _, s in scores), default=0)
    matched = tuple(t for t, s in scores if best and s == best)
    every = set().union(*(kw for _, kw in keywords)) if keywords else set()
    unmatched = tuple(dict.fromkeys(w for w in content if w not in every))
    return TaskMatch(
        tasks=matched,
        unmatched=unmatched,
        named_all=any(w in ALL_WORDS for w in words),
        generic=any(w in GENERIC_REFS for w in words),
    )


def active(tasks: Iterable[TaskSummary]) -> list[TaskSummary]:
    """The tasks that have not ended yet."""
    return [t for t in tasks if not t.terminal]

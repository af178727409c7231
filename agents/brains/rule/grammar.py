"""The grammar the rule brain needs: where a phrase occurs, whether a negation or a
hold governs it, whether a sentence asks for something or reports, asks or forbids.

Everything works on a :class:`~agents.brains.rule.reading.Reading`'s clauses, so
"call everyone who hasn't finished onboarding" is a request (the "not" belongs to the
relative clause after the verb) while "don't reach out to the patients who haven't
onboarded" is a prohibition (the "not" comes before the verb, in its clause).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agents.brains.rule.reading import Reading
from agents.brains.rule.vocabulary import (
    HOLD_CLAUSE,
    HOLD_PHRASES,
    HOLD_WORDS,
    NEGATORS,
    QUESTION_AUX,
    RELATIVIZERS,
    REQUEST_LEADS,
    WH_WORDS,
)

_LEADS = tuple(sorted((tuple(p.split()) for p in REQUEST_LEADS), key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class Occurrence:
    """Where a phrase occurs: which clause, at which word."""

    clause: int
    start: int
    phrase: str


def find(reading: Reading, phrases: Iterable[str]) -> list[Occurrence]:
    """Every occurrence of *phrases* (whole words), in reading order."""
    found: list[Occurrence] = []
    wanted = [tuple(p.split()) for p in phrases]
    for c, words in enumerate(reading.clauses):
        for i in range(len(words)):
            for phrase in wanted:
                if phrase and words[i : i + len(phrase)] == phrase:
                    found.append(Occurrence(c, i, " ".join(phrase)))
    found.sort(key=lambda o: (o.clause, o.start))
    return found


def lead_length(words: Sequence[str]) -> int:
    """How many leading words are politeness or request framing ("ok, can you …")."""
    i = 0
    while i < len(words):
        for lead in _LEADS:
            if tuple(words[i : i + len(lead)]) == lead:
                i += len(lead)
                if i < len(words) and words[i] == "to":
                    i += 1
                break
        else:
            return i
    return i


def negated(reading: Reading, at: Occurrence) -> bool:
    """Whether a negation before *at*, in its clause, governs it.

    A negation inside a relative clause ("the ones who haven't …") does not; "don't
    bother" is itself a cancel, not a negated one.
    """
    words = reading.clauses[at.clause][: at.start]
    for i in range(len(words) - 1, -1, -1):
        if words[i] in RELATIVIZERS:
            return False
        if words[i] in NEGATORS:
            return not (words[i] == "no" and i + 1 < len(words) and words[i + 1] == "longer")
    return False


def held(reading: Reading, at: Occurrence | None = None) -> bool:
    """Whether the sentence puts the work off ("hold off", "not yet", "until Monday").

    Hold words before *at* in its clause count, and so does any clause made only of
    hold words ("…, but not yet"); a relative clause's "yet" does not.
    """
    for c, words in enumerate(reading.clauses):
        text = f" {' '.join(words)} "
        in_clause = at is not None and c == at.clause
        if in_clause:
            assert at is not None
            before = words[: at.start]
            after = list(words[at.start :])
            cut = next((i for i, w in enumerate(after) if w in RELATIVIZERS), len(after))
            scope = f" {' '.join([*before, *after[:cut]])} "
            if any(f" {p} " in scope for p in HOLD_PHRASES) or set(scope.split()) & HOLD_WORDS:
                return True
        elif set(words) <= HOLD_CLAUSE and (
            any(f" {p} " in text for p in HOLD_PHRASES) or set(words) & HOLD_WORDS
        ):
            return True
    return False


def is_question(reading: Reading) -> bool:
    """Whether the sentence asks (an auxiliary or a wh-word first, or a question mark)
    rather than requests ("can you …?" is a request)."""
    if not reading.words:
        return False
    first = reading.clauses[0]
    lead = lead_length(first)
    if lead and first[:1] != ("so",) and _request_lead(first):
        return False
    rest = first[lead:]
    opener = rest[0] if rest else ""
    after = rest[1] if len(rest) > 1 else ""
    if opener in QUESTION_AUX or opener in WH_WORDS or opener in {"should", "shall"}:
        return True
    if opener == "do" and after in {"you", "we", "i", "they", "he", "she", "it"}:
        return True
    return reading.original.strip().endswith("?")


def _request_lead(words: Sequence[str]) -> bool:
    text = " ".join(words[:3])
    return text.startswith(
        (
            "can you",
            "could you",
            "would you",
            "will you",
            "can we",
            "could we",
            "can someone",
            "could someone",
            "can somebody",
            "could somebody",
            "would someone",
            "please",
            "pls",
            "kindly",
        )
    )


def imperative(reading: Reading, at: Occurrence) -> bool:
    """Whether the phrase at *at* is commanded: first in its clause past the framing."""
    words = reading.clauses[at.clause]
    return lead_length(words[: at.start]) == at.start


def subject_before(reading: Reading, at: Occurrence) -> str | None:
    """A subject other than "you" in front of *at* ("I'll call Bob", "Bob called")."""
    words = reading.clauses[at.clause][: at.start]
    rest = words[lead_length(words) :]
    for word in rest:
        if word in {"i", "he", "she", "they", "we"}:
            return word
    return None

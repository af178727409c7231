"""Caller verification: a voice caller is matched against the patient directory the
way clinics do it, by full name and date of birth, in a bounded number of tries.

Sans-I/O: :class:`CallerVerification` takes what the caller said and the directory's
records and says what came of the try; it stores nothing, speaks nothing and audits
nothing (its caller does, without the values: outcome and attempt number only).

Invariants: at most ``max_attempts`` tries are ever judged; once verified or locked
the outcome never changes; a try matches only when exactly one record has both the
name and the date of birth (two patients who share both are a match for neither).
"""

from __future__ import annotations

import enum
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from agents.models import Patient
from agents.ownership import NOBODY

MAX_ATTEMPTS = 3
"""Tries before the agent stops asking and offers a person (a callback) instead."""

_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%B %d %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y")


class VerificationOutcome(enum.StrEnum):
    VERIFIED = "verified"
    NO_MATCH = "no_match"
    LOCKED = "locked"
    """No more tries: the last one failed, or tries had run out already."""


@dataclass(frozen=True, slots=True)
class VerificationResult:
    outcome: VerificationOutcome
    attempt: int
    """Which try this was (1-based); tries after the lock repeat the last number."""
    patient_id: str | None = None


def normalize_name(name: str) -> str:
    """A name as compared: case, spacing and punctuation aside."""
    return " ".join(re.sub(r"[^\w\s'-]", " ", name).casefold().split())


def parse_date_of_birth(text: str) -> date | None:
    """A spoken or written date of birth (``1968-03-14``, ``March 14, 1968``,
    ``03/14/1968``, ``14 March 1968``, ``march fourteenth nineteen sixty eight``), or
    ``None``."""
    cleaned = " ".join(re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text.replace(",", " ")).split())
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, pattern).date()
        except ValueError:
            continue
    found, rest = read_date_of_birth(text)
    return found if found is not None and not rest.strip() else None


# -- dates as people say them ---------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}


def _words(text: str) -> list[str]:
    return text.split()


_UNITS = {
    word: number
    for number, word in enumerate(
        _words(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen"
        )
    )
}
_UNITS["oh"] = 0
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_TENS.update({"sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90})
_ORDINALS = {
    word: number
    for number, word in enumerate(
        _words(
            "zeroth first second third fourth fifth sixth seventh eighth ninth tenth "
            "eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth "
            "eighteenth nineteenth"
        )
    )
}
_ORDINALS.update({"twentieth": 20, "thirtieth": 30})
_GLUE = {"the", "of", "and"}
"""Words a spoken date has between its parts ("the fourteenth of March")."""


def _number_words(words: Sequence[str], start: int) -> tuple[int | None, int, bool]:
    """The number spoken from ``words[start]`` (up to two words, or digits): its value,
    the words it took, and whether it was an ordinal ("fourteenth", "14th")."""
    if start >= len(words):
        return None, 0, False
    word = words[start]
    digits = re.fullmatch(r"(\d{1,4})(st|nd|rd|th)?", word)
    if digits:
        return int(digits[1]), 1, digits[2] is not None
    if word in _ORDINALS:
        return _ORDINALS[word], 1, True
    if word in _TENS:
        following = words[start + 1] if start + 1 < len(words) else ""
        if following in _UNITS and 0 < _UNITS[following] < 10:
            return _TENS[word] + _UNITS[following], 2, False
        if following in _ORDINALS and 0 < _ORDINALS[following] < 10:
            return _TENS[word] + _ORDINALS[following], 2, True
        return _TENS[word], 1, False
    if word in _UNITS:
        return _UNITS[word], 1, False
    return None, 0, False


def _year_words(words: Sequence[str], start: int) -> tuple[int | None, int]:
    """A year spoken from ``words[start]``: ``1968``, "nineteen sixty eight", "nineteen
    oh five", "two thousand five"."""
    if start < len(words) and re.fullmatch(r"\d{4}", words[start]):
        return int(words[start]), 1
    if words[start : start + 2] == ["two", "thousand"]:
        at = start + 2
        while at < len(words) and words[at] == "and":
            at += 1
        rest, used, _ = _number_words(words, at)
        if rest is not None and rest < 100:
            return 2000 + rest, at - start + used
        return 2000, 2
    century, used, ordinal = _number_words(words, start)
    if century is None or ordinal or not 10 <= century <= 20:
        return None, 0
    at = start + used
    if at < len(words) and words[at] == "oh":
        unit, more, _ = _number_words(words, at + 1)
        if unit is not None and unit < 10:
            return century * 100 + unit, used + 1 + more
        return None, 0
    rest, more, ordinal = _number_words(words, at)
    if rest is None or ordinal or not 10 <= rest < 100:
        return None, 0
    return century * 100 + rest, used + more


def read_date_of_birth(text: str) -> tuple[date | None, str]:
    """The date said in *text* ("born March 14th, 1968", "the fourteenth of march
    nineteen sixty eight", "03/14/1968"), and *text* without it."""
    numeric = re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b|\b(\d{1,2})/(\d{1,2})/(\d{4})\b", text)
    if numeric:
        year, month, day = (
            (numeric[1], numeric[2], numeric[3])
            if numeric[1]
            else (numeric[6], numeric[4], numeric[5])
        )
        rest = text[: numeric.start()] + " " + text[numeric.end() :]
        return _date(int(year), int(month), int(day)), rest
    words = re.sub(r"[^\w\s']", " ", text.casefold().replace("-", " ")).split()
    for at, word in enumerate(words):
        month = _MONTHS.get(word)
        if month is None:
            continue
        # "March fourteenth nineteen sixty eight"
        day, used, _ = _number_words(words, at + 1)
        if day is not None and 1 <= day <= 31:
            year_at = at + 1 + used
            while year_at < len(words) and words[year_at] in _GLUE:
                year_at += 1
            year, year_used = _year_words(words, year_at)
            if year is not None:
                kept = words[:at] + words[year_at + year_used :]
                return _date(year, month, day), " ".join(kept)
        # "the fourteenth of March nineteen sixty eight"
        before = at
        while before > 0 and words[before - 1] in _GLUE:
            before -= 1
        for width in (2, 1):
            day_at = before - width
            if day_at < 0:
                continue
            day, used, _ = _number_words(words, day_at)
            if day is None or used != width or not 1 <= day <= 31:
                continue
            year_at = at + 1
            while year_at < len(words) and words[year_at] in _GLUE:
                year_at += 1
            year, year_used = _year_words(words, year_at)
            if year is not None:
                start = day_at
                while start > 0 and words[start - 1] in _GLUE:
                    start -= 1
                kept = words[:start] + words[year_at + year_used :]
                return _date(year, month, day), " ".join(kept)
    return None, text


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


class CallerVerification:
    """One caller's tries at proving who they are."""

    def __init__(self, max_attempts: int = MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.attempts = 0
        self.patient_id: str | None = None

    @property
    def locked(self) -> bool:
        return self.patient_id is None and self.attempts >= self.max_attempts

    def attempt(self, patients: Sequence[Patient], name: str, born: str) -> VerificationResult:
        """Judge one try against the directory's *patients*."""
        if self.patient_id is not None:
            return VerificationResult(VerificationOutcome.VERIFIED, self.attempts, self.patient_id)
        if self.locked:
            return VerificationResult(VerificationOutcome.LOCKED, self.attempts)
        self.attempts += 1
        wanted_name, wanted_date = normalize_name(name), parse_date_of_birth(born)
        matches = [
            p
            for p in patients
            if wanted_date is not None
            and normalize_name(p.name) == wanted_name
            and parse_date_of_birth(p.date_of_birth) == wanted_date
        ]
        if len(matches) == 1:
            self.patient_id = matches[0].id
            return VerificationResult(VerificationOutcome.VERIFIED, self.attempts, self.patient_id)
        if self.locked:
            return VerificationResult(VerificationOutcome.LOCKED, self.attempts)
        return VerificationResult(VerificationOutcome.NO_MATCH, self.attempts)

    @property
    def scope(self) -> str:
        """The patient scope of this caller now: their record once verified, else none."""
        return self.patient_id if self.patient_id is not None else NOBODY


CALLS_KEPT = 16
"""Calls whose verification a conversation remembers; the oldest is forgotten first
(its caller, calling again, is asked again: forgetting only ever narrows a scope)."""


class CallerCalls:
    """A conversation's phone calls, each with its own caller's verification.

    Verification is per call, never per conversation: a second call on the same line
    is a new caller until they too are verified. Bounded by :data:`CALLS_KEPT`.
    """

    def __init__(self, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.max_attempts = max_attempts
        self._calls: OrderedDict[str, CallerVerification] = OrderedDict()

    def __getitem__(self, call: str) -> CallerVerification:
        found = self._calls.get(call)
        if found is None:
            found = self._calls[call] = CallerVerification(self.max_attempts)
            while len(self._calls) > CALLS_KEPT:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(call)
        return found


_FILLER = frozenset(
    _words(
        "hi hello hey yes yeah sure okay ok well so um uh this is it's its i i'm im am "
        "my me name names called date of birth birthdate birthday dob born on and the "
        "it was that's thats here speaking calling full please"
    )
)
"""Words around a name and a date of birth that are no part of the name."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a caller says they are: a name and a date of birth (PHI: never logged)."""

    name: str
    date_of_birth: str
    """ISO ``YYYY-MM-DD``."""


def read_identity(text: str) -> Identity | None:
    """The name and date of birth a caller said in *text* ("This is Dana Whitfield,
    born March 14th 1968"), or ``None`` if it does not hold both."""
    born, rest = read_date_of_birth(text)
    if born is None:
        return None
    words = [w for w in normalize_name(rest).split() if w not in _FILLER]
    if not words or len(words) > 5:
        return None
    return Identity(" ".join(words), born.isoformat())

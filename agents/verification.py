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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from agents.models import Patient

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
    ``03/14/1968``, ``14 March 1968``), or ``None``."""
    cleaned = " ".join(re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text.replace(",", " ")).split())
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, pattern).date()
        except ValueError:
            continue
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

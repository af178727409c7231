"""Caller verification, sans-I/O: name and date of birth, three tries, then no more."""

from __future__ import annotations

import pytest

from agents.models import Patient
from agents.verification import (
    CallerVerification,
    VerificationOutcome,
    parse_date_of_birth,
)

DANA = Patient("ws", "pt-dana", "Dana Whitfield", "1968-03-14", "MRN-1", "555", True)
EVAN = Patient("ws", "pt-evan", "Evan Okafor", "1959-08-30", "MRN-2", "556", True)
PATIENTS = [DANA, EVAN]


@pytest.mark.parametrize(
    "spoken", ["1968-03-14", "March 14, 1968", "march 14th 1968", "03/14/1968", "14 March 1968"]
)
def test_a_date_of_birth_as_people_say_it(spoken: str) -> None:
    assert parse_date_of_birth(spoken) == parse_date_of_birth("1968-03-14")


def test_name_and_date_of_birth_both_match_one_record() -> None:
    caller = CallerVerification()
    result = caller.attempt(PATIENTS, "dana  whitfield", "March 14, 1968")
    assert (result.outcome, result.attempt, result.patient_id) == ("verified", 1, "pt-dana")


def test_three_failed_tries_lock_and_nothing_matches_after() -> None:
    caller = CallerVerification()
    tries = [
        caller.attempt(PATIENTS, "Dana Whitfield", "1959-08-30"),  # Evan's date
        caller.attempt(PATIENTS, "Evan Whitfield", "1968-03-14"),
        caller.attempt(PATIENTS, "Zelda", "1968-03-14"),
    ]
    assert [(r.outcome, r.attempt) for r in tries] == [
        (VerificationOutcome.NO_MATCH, 1),
        (VerificationOutcome.NO_MATCH, 2),
        (VerificationOutcome.LOCKED, 3),
    ]
    # The right answer, too late, is not a match.
    late = caller.attempt(PATIENTS, "Dana Whitfield", "1968-03-14")
    assert (late.outcome, late.attempt, late.patient_id) == ("locked", 3, None)


def test_two_patients_sharing_name_and_birthday_match_neither() -> None:
    twin = Patient("ws", "pt-dana-2", "Dana Whitfield", "1968-03-14", "MRN-3", "557", True)
    result = CallerVerification().attempt([DANA, twin], "Dana Whitfield", "1968-03-14")
    assert result.outcome is VerificationOutcome.NO_MATCH

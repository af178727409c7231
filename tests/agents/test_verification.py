"""Caller verification, sans-I/O: name and date of birth, three tries, then no more."""

from __future__ import annotations

import pytest

from agents.models import Patient
from agents.verification import (
    CallerVerification,
    Identity,
    VerificationOutcome,
    parse_date_of_birth,
    read_identity,
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


@pytest.mark.parametrize(
    "spoken",
    [
        "march fourteenth nineteen sixty eight",
        "the fourteenth of March, nineteen sixty-eight",
        "March 14th, 1968",
        "3/14/1968",
    ],
)
def test_a_date_of_birth_as_speech_to_text_writes_it(spoken: str) -> None:
    assert parse_date_of_birth(spoken) == parse_date_of_birth("1968-03-14")


@pytest.mark.parametrize(
    ("said", "name", "born"),
    [
        ("This is Dana Whitfield, born March 14th, 1968", "dana whitfield", "1968-03-14"),
        (
            "my name is evan okafor and my date of birth is august thirtieth nineteen fifty nine",
            "evan okafor",
            "1959-08-30",
        ),
        ("Bo Chen 02/03/2005", "bo chen", "2005-02-03"),
        ("it's Ana Ruiz, the first of may two thousand and one", "ana ruiz", "2001-05-01"),
    ],
)
def test_a_caller_saying_who_they_are(said: str, name: str, born: str) -> None:
    assert read_identity(said) == Identity(name, born)


@pytest.mark.parametrize(
    "said",
    [
        "I need a prior authorization for my Ozempic",
        "What is my date of birth?",
        "Dana Whitfield",
        "born February 30th 1968",  # no such day, and no name
        "March 14th",
    ],
)
def test_what_is_not_a_name_and_a_date_of_birth(said: str) -> None:
    assert read_identity(said) is None

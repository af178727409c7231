"""Writing sentences: lists of names, capitals and closing punctuation."""

from __future__ import annotations

from collections.abc import Sequence

from agents.demo.records import first_name
from agents.models import Patient


def join(items: Sequence[str]) -> str:
    """ "Alice, Bob and Carol"."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def short_names(patients: Sequence[Patient]) -> list[str]:
    """First names, or full names where two of them share a first name."""
    firsts = [first_name(p.name) for p in patients]
    return [p.name if firsts.count(f) > 1 else f for p, f in zip(patients, firsts, strict=True)]


def patient_label(patient: Patient, everyone: Sequence[Patient] = ()) -> str:
    """How a task card names a patient: "Dana W." (the full name where that is ambiguous)."""
    parts = patient.name.split()
    if len(parts) < 2:
        return patient.name
    label = f"{parts[0]} {parts[-1][0]}."
    others = [p for p in everyone if p.id != patient.id and len(p.name.split()) > 1]
    if any(f"{p.name.split()[0]} {p.name.split()[-1][0]}." == label for p in others):
        return patient.name
    return label


def sentence(text: str) -> str:
    """*text* with a capital first letter and closing punctuation."""
    text = text.strip().rstrip(",;:—- ")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?…" else text + "."


def capital(text: str) -> str:
    """*text* with a capital first letter."""
    return text[:1].upper() + text[1:]


def lower_first(text: str) -> str:
    """*text* with a lowercase first letter, to continue a sentence with it."""
    if len(text) > 1 and text[1].isupper():
        return text  # an acronym or a name: leave it
    return text[:1].lower() + text[1:]

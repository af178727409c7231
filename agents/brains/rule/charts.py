"""Answers from patient charts: the fields asked about, and what a cross-reference of
several charts found."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from agents.brains.rule.sentences import join
from agents.demo.records import CrossReference, Overlap, first_name

FIELD_NAMES = {
    "date_of_birth": "Date of birth",
    "mrn": "MRN",
    "phone": "Phone",
    "medications": "Medications",
    "allergies": "Allergies",
    "conditions": "Conditions",
    "provider": "Provider",
    "insurer": "Insurer",
}
"""The chart fields an answer can speak of, and their names in a list."""


def _format_date(iso: str) -> str:
    try:
        day = date.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{day:%B} {day.day}, {day.year}"


def field_value(record: Mapping[str, Any], field: str) -> str:
    """*field* of *record* as words: lists joined, dates spelled out, gaps said."""
    value = record.get(field)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none on file"
    if field == "date_of_birth" and isinstance(value, str):
        return _format_date(value)
    return str(value) if value else "not on file"


def _field_answer(record: Mapping[str, Any], field: str, name: str) -> str:
    """One sentence answering *field* about *name*'s *record*."""
    value = record.get(field)
    items = [str(v) for v in value] if isinstance(value, list | tuple) else []
    if field == "date_of_birth":
        return f"{name}'s date of birth is {field_value(record, field)}."
    if field == "mrn":
        return f"{name}'s MRN is {field_value(record, field)}."
    if field == "phone":
        return f"{name}'s phone number is {field_value(record, field)}."
    if field == "medications":
        return f"{name} takes {join(items)}." if items else f"{name} has no medications on file."
    if field == "allergies":
        return (
            f"{name} is allergic to {join(items)}." if items else f"{name} has no known allergies."
        )
    if field == "conditions":
        return (
            f"{name} has {join(items)} on file." if items else f"{name} has no conditions on file."
        )
    if field == "provider":
        return f"{name}'s provider is {field_value(record, field)}."
    return f"{name} is insured with {field_value(record, field)}."


def lookup_answer(data: Mapping[str, Any], text: str) -> str:
    """Answer the fields a lookup was asked for; the whole chart (*text*) if none were."""
    asked = [f for f in data.get("fields") or () if f in FIELD_NAMES]
    name = str(data.get("name") or "")
    if not asked or not name:
        return text
    first = str(data.get("first_name") or first_name(name))
    return " ".join(
        _field_answer(data, field, name if i == 0 else first) for i, field in enumerate(asked)
    )


def _overlap_list(overlaps: Sequence[Overlap]) -> str:
    return "; ".join(f"{o.item} — {join(o.patients)}" for o in overlaps)


def cross_reference_findings(xref: CrossReference) -> list[str]:
    """What a cross-reference found, one sentence per kind of finding."""
    parts: list[str] = []
    if xref.medications:
        parts.append(f"Shared medications: {_overlap_list(xref.medications)}.")
    else:
        parts.append("No medications in common.")
    if xref.allergies:
        parts.append(f"Shared allergies: {_overlap_list(xref.allergies)}.")
    else:
        parts.append("No allergies in common.")
    if xref.conditions:
        parts.append(f"Shared conditions: {_overlap_list(xref.conditions)}.")
    if xref.providers:
        same = "; ".join(f"{o.item} sees {join(o.patients)}" for o in xref.providers)
        parts.append(f"Same provider: {same}.")
    if xref.interactions:
        found = "; ".join(
            f"{i.patient} takes {i.first} with {i.second} ({i.risk})" for i in xref.interactions
        )
        parts.append(f"Interactions to watch: {found}.")
    else:
        parts.append("No interactions I know of.")
    return parts

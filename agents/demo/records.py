"""The records tool, and the cross-reference of several patients' records.

``records.lookup`` reads one patient's chart from the workspace's
:class:`~agents.ports.PatientDirectory`, by id or by name. :func:`cross_reference` is
what the front desk says after a batch of lookups: what the records share, and which
medicines should not be taken together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from agents.exceptions import ToolError
from agents.models import Patient
from agents.ownership import NO_SUCH_PATIENT, scoped
from agents.ports import PatientDirectory
from agents.tools import Tool, ToolContext, ToolResult

RECORDS_LOOKUP = "records.lookup"
LOOKUP_LATENCY = 0.3
"""Seconds a lookup takes at latency scale 1: quick enough to run inline."""

FIELDS = (
    "date_of_birth",
    "mrn",
    "phone",
    "medications",
    "allergies",
    "conditions",
    "provider",
    "insurer",
)
"""The chart fields a lookup may be asked for (``args["fields"]``)."""

# Pairs of medications (by generic name) that should not be taken together without a
# second look, and why. Deliberately small: this is a demo, not a formulary.
INTERACTIONS: Mapping[frozenset[str], str] = {
    frozenset({"lisinopril", "spironolactone"}): "risk of high potassium",
    frozenset({"warfarin", "aspirin"}): "higher bleeding risk",
    frozenset({"semaglutide", "insulin"}): "higher risk of low blood sugar",
    frozenset({"warfarin", "ibuprofen"}): "higher bleeding risk",
    frozenset({"lisinopril", "ibuprofen"}): "can weaken blood-pressure control and strain kidneys",
}


def first_name(name: str) -> str:
    """The first word of a full name."""
    return name.split()[0] if name.split() else name


def medication_key(entry: str) -> str:
    """The generic name a medication entry starts with, lowercased: ``"metformin"``."""
    words = entry.split()
    return words[0].lower() if words else ""


def medication_name(entry: str) -> str:
    """A medication entry without its dose: ``"semaglutide (Ozempic)"``."""
    kept: list[str] = []
    for word in entry.split():
        if word[:1].isdigit():
            break
        kept.append(word)
    return " ".join(kept) or entry


async def find_patient(directory: PatientDirectory, workspace_id: str, query: str) -> Patient:
    """The one patient whose id, full name, first or last name is *query*.

    Raises :class:`ToolError` if nobody matches, or more than one patient does.
    """
    wanted = " ".join(query.split()).lower()
    if not wanted:
        raise ToolError("No patient was named.")
    by_id = await directory.get_patient(workspace_id, query.strip())
    if by_id is not None:
        return by_id
    patients = await directory.list_patients(workspace_id)
    for matches in (
        [p for p in patients if p.name.lower() == wanted],
        [p for p in patients if first_name(p.name).lower() == wanted],
        [p for p in patients if p.name.split()[-1:] and p.name.split()[-1].lower() == wanted],
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ToolError("More than one patient matches that name.")
    # The message never echoes the query: tool errors may be shown to anyone.
    raise ToolError(NO_SUCH_PATIENT)


def record_data(patient: Patient, fields: Sequence[str] = ()) -> dict[str, Any]:
    """A patient's chart as the lookup's structured result (JSON-ready)."""
    return {
        "kind": "records",
        "patient_id": patient.id,
        "name": patient.name,
        "first_name": first_name(patient.name),
        "date_of_birth": patient.date_of_birth,
        "mrn": patient.mrn,
        "phone": patient.phone,
        "onboarding_complete": patient.onboarding_complete,
        "medications": list(patient.medications),
        "allergies": list(patient.allergies),
        "conditions": list(patient.conditions),
        "provider": patient.provider,
        "insurer": patient.insurer,
        "fields": list(fields),
    }


def _listing(items: Sequence[str], none: str) -> str:
    return ", ".join(items) if items else none


def record_text(patient: Patient) -> str:
    """A one-paragraph chart summary, as the records clerk reports it."""
    return (
        f"{patient.name} — born {patient.date_of_birth}, {patient.mrn}. "
        f"Medications: {_listing(patient.medications, 'none on file')}. "
        f"Allergies: {_listing(patient.allergies, 'none known')}. "
        f"Conditions: {_listing(patient.conditions, 'none on file')}. "
        f"Provider: {patient.provider or 'not assigned'}. "
        f"Insurer: {patient.insurer or 'not on file'}."
    )


def build_records_tool(directory: PatientDirectory, *, latency_scale: float) -> Tool:
    """``records.lookup``: one patient's chart.

    Args: ``patient_id`` or ``patient`` (a name), and optionally ``fields`` (a list of
    :data:`FIELDS` the asker cares about, echoed in the result for the reply).
    Raises :class:`ToolError` for an unknown or ambiguous patient.
    """
    latency = LOOKUP_LATENCY * latency_scale

    async def lookup(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        query = str(args.get("patient_id") or args.get("patient") or "")
        patient = await find_patient(scoped(directory, ctx.patient_scope), ctx.workspace_id, query)
        ctx.report_progress(f"Reading {first_name(patient.name)}'s chart…")
        await anyio.sleep(latency)
        wanted = args.get("fields") or ()
        fields = [f for f in wanted if f in FIELDS] if isinstance(wanted, list | tuple) else []
        return ToolResult(record_text(patient), record_data(patient, fields))

    return Tool(
        name=RECORDS_LOOKUP,
        description="Look up one patient's chart (by id or name): medications, allergies, "
        "conditions, provider, insurer, date of birth.",
        expected_latency=latency,
        run=lookup,
    )


# -- cross-reference ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overlap:
    """Something several records share, and whose records they are (first names)."""

    item: str
    patients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Interaction:
    """Two of one patient's medications that interact, and the risk."""

    patient: str
    first: str
    second: str
    risk: str


@dataclass(frozen=True, slots=True)
class CrossReference:
    """What a set of records has in common, and what deserves a second look."""

    patients: tuple[str, ...]
    medications: tuple[Overlap, ...]
    allergies: tuple[Overlap, ...]
    conditions: tuple[Overlap, ...]
    providers: tuple[Overlap, ...]
    interactions: tuple[Interaction, ...]


def _labels(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """First names, or full names where two records share a first name."""
    firsts = [str(r.get("first_name") or first_name(str(r.get("name", "")))) for r in records]
    return [
        str(r.get("name", label)) if firsts.count(label) > 1 else label
        for r, label in zip(records, firsts, strict=True)
    ]


def _overlaps(
    labels: Sequence[str], items: Sequence[Iterable[tuple[str, str]]]
) -> tuple[Overlap, ...]:
    """Group ``(key, shown)`` items by key; keep the keys more than one record has."""
    shown: dict[str, str] = {}
    holders: dict[str, list[str]] = {}
    for label, pairs in zip(labels, items, strict=True):
        for key, text in pairs:
            shown.setdefault(key, text)
            if label not in holders.setdefault(key, []):
                holders[key].append(label)
    shared = [Overlap(shown[k], tuple(who)) for k, who in holders.items() if len(who) > 1]
    # Most widely shared first; ties in the order the records list them.
    return tuple(sorted(shared, key=lambda o: -len(o.patients)))


def cross_reference(records: Sequence[Mapping[str, Any]]) -> CrossReference:
    """Cross-reference charts shaped like :func:`record_data`'s."""
    labels = _labels(records)

    def strings(record: Mapping[str, Any], key: str) -> list[str]:
        value = record.get(key) or []
        return [str(v) for v in value] if isinstance(value, list | tuple) else []

    medications = _overlaps(
        labels,
        [
            [(medication_key(m), medication_name(m)) for m in strings(r, "medications")]
            for r in records
        ],
    )
    allergies = _overlaps(
        labels, [[(a.lower(), a) for a in strings(r, "allergies")] for r in records]
    )
    conditions = _overlaps(
        labels, [[(c.lower(), c) for c in strings(r, "conditions")] for r in records]
    )
    providers = _overlaps(
        labels,
        [
            [(str(r["provider"]).lower(), str(r["provider"]))] if r.get("provider") else []
            for r in records
        ],
    )
    interactions: list[Interaction] = []
    for label, record in zip(labels, records, strict=True):
        meds = strings(record, "medications")
        for i, first in enumerate(meds):
            for second in meds[i + 1 :]:
                risk = INTERACTIONS.get(frozenset({medication_key(first), medication_key(second)}))
                if risk is not None:
                    interactions.append(
                        Interaction(label, medication_name(first), medication_name(second), risk)
                    )
    return CrossReference(
        patients=tuple(labels),
        medications=medications,
        allergies=allergies,
        conditions=conditions,
        providers=providers,
        interactions=tuple(interactions),
    )

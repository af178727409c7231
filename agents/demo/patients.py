"""The demo workspace's patients: fictional people with just enough chart to be useful.

Alice, Bob and Carol have not finished onboarding (the outreach example). The other
five have full charts chosen so that cross-referencing them finds real overlaps:
shared medications and allergies, shared providers, and a drug interaction or two.
Every name, date, number and record here is made up.
"""

from __future__ import annotations

from agents.models import Patient

DEMO_WORKSPACE = "demo"
"""The demo workspace's id."""


def demo_patients(workspace_id: str = DEMO_WORKSPACE) -> list[Patient]:
    """The demo's patients, in a stable order (not onboarded first)."""
    return [
        Patient(
            workspace_id=workspace_id,
            id="pt-alice",
            name="Alice Moreno",
            date_of_birth="1985-06-02",
            mrn="MRN-100231",
            phone="+1 555-0101",
            onboarding_complete=False,
            provider="Dr. Priya Natarajan",
            insurer="Bluebridge Health",
        ),
        Patient(
            workspace_id=workspace_id,
            id="pt-bob",
            name="Bob Tran",
            date_of_birth="1972-11-19",
            mrn="MRN-100232",
            phone="+1 555-0102",
            onboarding_complete=False,
            provider="Dr. Marcus Lee",
            insurer="Cedar Mutual",
        ),
        Patient(
            workspace_id=workspace_id,
            id="pt-carol",
            name="Carol Singh",
            date_of_birth="1990-01-27",
            mrn="MRN-100233",
            phone="+1 555-0103",
            onboarding_complete=False,
        ),
        Patient(
            workspace_id=workspace_id,
            id="pt-dana",
            name="Dana Whitfield",
            date_of_birth="1968-03-14",
            mrn="MRN-100234",
            phone="+1 555-0104",
            onboarding_complete=True,
            medications=(
                "semaglutide (Ozempic) 0.5 mg weekly",
                "metformin 1000 mg twice daily",
                "atorvastatin 20 mg daily",
            ),
            allergies=("penicillin",),
            conditions=("type 2 diabetes", "obesity", "high cholesterol"),
            provider="Dr. Priya Natarajan",
            insurer="Bluebridge Health",
        ),
        Patient(
            workspace_id=workspace_id,
            id="pt-evan",
            name="Evan Okafor",
            date_of_birth="1959-08-30",
            mrn="MRN-100235",
            phone="+1 555-0105",
            onboarding_complete=True,
            medications=(
                "metformin 500 mg twice daily",
                "lisinopril 10 mg daily",
                "atorvastatin 40 mg daily",
            ),
            allergies=("sulfa drugs",),
            conditions=("type 2 diabetes", "hypertension"),
            provider="Dr. Priya Natarajan",
            insurer="Cedar Mutual",
        ),
        Patient(
            workspace_id=workspace_id,
            id="pt-farah",
            name="Farah Haddad",
            date_of_birth="1977-04-09",
            mrn="MRN-100236",
            phone="+1 555-0106",
            onboarding_complete=True,
            medications=(
                "lisinopril 20 mg daily",
                "spironolactone 25 mg daily",
                "furosemide 40 mg daily",
            ),
            allergies=("penicillin", "shellfish"),
            conditions=("heart failure", "hypertension"),
            provider="Dr. Marcus Lee",
            insurer="Bluebridge Health",
        ),
        Patient(
            workspace_id=workspace_id,
            id="pt-gus",
            name="Gus Lindqvist",
            date_of_birth="1949-12-01",
            mrn="MRN-100237",
            phone="+1 555-0107",
            onboarding_complete=True,
            medications=(
                "warfarin 5 mg daily",
                "aspirin 81 mg daily",
                "atorvastatin 40 mg daily",
            ),
            allergies=("penicillin", "latex"),
            conditions=("atrial fibrillation", "coronary artery disease"),
            provider="Dr. Marcus Lee",
            insurer="Harbor Senior Advantage",
        ),
        Patient(
            workspace_id=workspace_id,
            id="pt-hana",
            name="Hana Kobayashi",
            date_of_birth="1983-07-22",
            mrn="MRN-100238",
            phone="+1 555-0108",
            onboarding_complete=True,
            medications=(
                "semaglutide (Ozempic) 1 mg weekly",
                "insulin glargine 20 units nightly",
                "metformin 1000 mg twice daily",
            ),
            allergies=("sulfa drugs",),
            conditions=("type 2 diabetes",),
            provider="Dr. Priya Natarajan",
            insurer="Cedar Mutual",
        ),
    ]

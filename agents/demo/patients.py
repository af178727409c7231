"""The demo workspace's patients: fictional people with just enough chart to be useful.

They are written in the demo's workspace file (``agents/demo/workspace.toml``).

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
    """The demo's patients, in a stable order (not onboarded first), from its file."""
    from agents.demo.file import demo_spec

    return demo_spec().patient_records(workspace_id)

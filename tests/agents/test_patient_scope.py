"""The runtime's door for patient scope (agents.ownership), whatever a brain decides.

A brain may name any patient (a model does); a conversation a patient spoke in runs
no tool call and starts no work about another patient: the brain hears what it would
for a patient who does not exist. Staff's conversations are not scoped.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from agents.memory import MemoryStore
from agents.models import Patient
from agents.ownership import NO_SUCH_PATIENT, NOBODY, ScopedDirectory, may_see_patient

from .harness import PERSON, WS, lab

pytestmark = pytest.mark.anyio

ADA = replace(PERSON, patient_id="pt-ada")


def test_a_scope_sees_its_own_record_only() -> None:
    assert may_see_patient(None, "pt-bo")
    assert may_see_patient("pt-ada", "pt-ada")
    assert not may_see_patient("pt-ada", "pt-bo")
    # An unverified caller's scope is no record's, not even one with an empty id.
    assert not may_see_patient(NOBODY, "")
    assert not may_see_patient(NOBODY, "pt-ada")


async def test_a_scoped_directory_holds_only_the_scope() -> None:
    store = MemoryStore()
    patients = [Patient(WS, i, i, "1970-01-01", "MRN", "555", True) for i in ("pt-ada", "pt-bo")]
    await store.save_patients(patients)
    ada = ScopedDirectory(store, "pt-ada")
    assert [p.id for p in await ada.list_patients(WS)] == ["pt-ada"]
    assert await ada.get_patient(WS, "pt-bo") is None
    assert await ScopedDirectory(store, NOBODY).list_patients(WS) == []
    with pytest.raises(PermissionError):
        await ada.save_patients(patients)


async def test_an_inline_call_about_another_patient_is_not_made() -> None:
    async with lab() as t:
        await t.runtime.say(ADA, "about quick pt-bo")
        await t.wait_for(lambda: any(m.text == NO_SUCH_PATIENT for m in t.messages()))
        await t.runtime.say(ADA, "about quick pt-ada")
        await t.wait_for(lambda: any(m.text == "quick None" for m in t.messages()))
        assert t.runtime.patient_scope == "pt-ada"


async def test_no_work_about_another_patient_is_started() -> None:
    async with lab() as t:
        await t.runtime.say(ADA, "assign quick pt-bo")
        await t.wait_for(lambda: any(m.text == NO_SUCH_PATIENT for m in t.messages()))
        assert t.tasks() == []
        assert not [m for m in t.messages() if m.text == "assigned"]


async def test_a_sub_agent_calls_no_tool_about_another_patient() -> None:
    async with lab() as t:
        await t.runtime.say(ADA, "stray quick pt-ada pt-bo")
        await t.wait_for(lambda: bool(t.tasks()) and t.tasks()[0].state.value == "completed")
        (task,) = t.tasks()
        assert task.result == NO_SUCH_PATIENT
        # About herself, the same work runs the tool.
        await t.runtime.say(ADA, "stray quick pt-ada pt-ada")
        await t.wait_for(lambda: len(t.tasks()) == 2 and t.tasks()[1].state.value == "completed")
        assert t.tasks()[1].result == "quick None"


async def test_staff_are_not_scoped() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "about quick pt-bo")
        await t.wait_for(lambda: any(m.text == "quick None" for m in t.messages()))
        assert t.runtime.patient_scope is None

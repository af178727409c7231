"""The runtime's door for phone callers (agents.callers), whatever a brain decides.

A caller (``Principal.call``) who is not verified gets replies and verification from
their turns, nothing else: a brain that delegates, runs a tool or checks on work is
held, the caller is asked who they are, and the request waits until they are verified.
Each try is audited with its outcome only.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from agents.callers import ASK_TO_VERIFY, LOCKED_OUT, NOT_MATCHED
from agents.models import Patient, Role
from agents.ownership import NOBODY
from agents.ports import AuditOutcome, AuditReason, AuditType

from .harness import PERSON, WS, lab

pytestmark = pytest.mark.anyio

CALLER = replace(PERSON, id="bridge", role=Role.SERVICE, act_for=PERSON.id, call="call-1")
ADA = Patient(WS, "pt-ada", "Ada Lovelace", "1815-12-10", "MRN-1", "555", True)


def texts(t: object) -> list[str]:
    return [m.text for m in t.messages()]  # type: ignore[attr-defined]


async def test_work_asked_for_before_verification_waits_for_it() -> None:
    async with lab() as t:
        await t.store.save_patients([ADA])
        await t.runtime.say(CALLER, "fan 1 quick")
        await t.wait_for(lambda: ASK_TO_VERIFY in texts(t))
        assert t.tasks() == []
        assert t.runtime.patient_scope == NOBODY
        # A reply needs no verification.
        await t.runtime.say(CALLER, "hello")
        await t.wait_for(lambda: "echo: hello" in texts(t))

        await t.runtime.say(CALLER, "verify ada lovelace 1815-12-10")
        await t.wait_for(lambda: "Thank you, Ada. I've confirmed who you are." in texts(t))
        # The held request is taken up now, in this call.
        await t.wait_for(lambda: len(t.tasks()) == 1)
        assert t.runtime.patient_scope == "pt-ada"
        (task,) = t.tasks()
        assert task.params["call"] == "call-1"
        await t.wait_for(lambda: bool(t.messages("followup")))
        assert [m.call for m in t.messages("followup")] == ["call-1"]
    (entry,) = [e for e in t.audit.entries if e.type is AuditType.CALLER_VERIFICATION]
    assert (entry.outcome, entry.reason) == (AuditOutcome.SUCCESS, AuditReason.VERIFIED)
    assert entry.actor == CALLER
    assert entry.on_behalf_of == (PERSON.id,)


async def test_three_failed_tries_lock_the_call_and_a_new_call_starts_again() -> None:
    async with lab() as t:
        await t.store.save_patients([ADA])
        for born in ("1815-12-11", "1815-12-12", "1815-12-13"):
            await t.runtime.say(CALLER, f"verify ada lovelace {born}")
        await t.runtime.say(CALLER, "verify ada lovelace 1815-12-10")
        await t.runtime.say(CALLER, "use quick")
        await t.wait_for(lambda: texts(t).count(LOCKED_OUT) == 3)
        assert texts(t).count(NOT_MATCHED) == 2
        assert t.tasks() == []
        assert t.runtime.patient_scope == NOBODY
        # Another call is another caller: its tries are its own.
        await t.runtime.say(replace(CALLER, call="call-2"), "verify ada lovelace 1815-12-10")
        await t.wait_for(lambda: any("confirmed who you are" in x for x in texts(t)))
    reasons = [e.reason for e in t.audit.entries if e.type is AuditType.CALLER_VERIFICATION]
    assert reasons == [
        AuditReason.NO_MATCH,
        AuditReason.NO_MATCH,
        AuditReason.LOCKED,
        AuditReason.LOCKED,
        AuditReason.VERIFIED,
    ]


async def test_a_try_that_cannot_be_audited_does_not_count() -> None:
    async with lab() as t:
        await t.store.save_patients([ADA])
        t.audit.fail = True
        await t.runtime.say(CALLER, "verify ada lovelace 1815-12-10")
        await t.wait_for(lambda: any("can't check that" in x for x in texts(t)))
        assert t.runtime.patient_scope == NOBODY
        t.audit.fail = False
        await t.runtime.say(CALLER, "verify ada lovelace 1815-12-10")
        await t.wait_for(lambda: any("confirmed who you are" in x for x in texts(t)))
        assert t.runtime.patient_scope == "pt-ada"


async def test_staff_are_never_asked_to_verify() -> None:
    async with lab() as t:
        await t.runtime.say(PERSON, "verify ada lovelace 1815-12-10")
        await t.runtime.say(PERSON, "use quick")
        await t.wait_for(lambda: any(x.startswith("quick ") for x in texts(t)))
        assert ASK_TO_VERIFY not in texts(t)
        assert not [e for e in t.audit.entries if e.type is AuditType.CALLER_VERIFICATION]

"""The demo workspace: its patients and agents, and the simulated tools' behaviour."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anyio
import pytest

from agents.demo import (
    CALL_LATENCY,
    LOOKUP_LATENCY,
    PHONE_CALL,
    PRIOR_AUTH,
    PRIOR_AUTH_LATENCY,
    RECORDS_LOOKUP,
    CallOutcome,
    CallScript,
    Decision,
    PayerSimulator,
    TelephonySimulator,
    build_demo_tools,
    cross_reference,
    demo_agents,
    demo_patients,
)
from agents.demo.payer import STILL_WAITING, SUBMITTED
from agents.demo.records import record_data
from agents.exceptions import ToolError
from agents.memory import MemoryStore
from agents.models import Patient
from agents.tools import Tool, ToolBox, ToolContext, ToolResult


async def demo_directory() -> MemoryStore:
    store = MemoryStore()
    await store.save_patients(demo_patients())
    return store


class Progress:
    """Records what a tool reports, and lets a test wait for a line."""

    def __init__(self, on_report: Callable[[str], object] | None = None) -> None:
        self.lines: list[str] = []
        self._on_report = on_report

    def __call__(self, text: str) -> None:
        self.lines.append(text)
        if self._on_report is not None:
            self._on_report(text)


def context(progress: Callable[[str], None], *, task_id: str | None = "task-1") -> ToolContext:
    return ToolContext(workspace_id="demo", task_id=task_id, report_progress=progress)


def tool(toolbox: ToolBox, name: str) -> Tool:
    found = toolbox.get(name)
    assert found is not None, name
    return found


async def run(toolbox: ToolBox, name: str, args: Mapping[str, Any]) -> tuple[ToolResult, list[str]]:
    progress = Progress()
    result = await tool(toolbox, name).run(context(progress), args)
    return result, progress.lines


# -- the demo's data ---------------------------------------------------------------------


def test_alice_bob_and_carol_have_not_finished_onboarding_and_five_others_have() -> None:
    patients = demo_patients()
    pending = [p.name.split()[0] for p in patients if not p.onboarding_complete]
    done = [p for p in patients if p.onboarding_complete]
    assert pending == ["Alice", "Bob", "Carol"]
    assert len(done) >= 5
    for patient in done:
        assert patient.medications
        assert patient.allergies
        assert patient.conditions
        assert patient.provider
        assert patient.insurer


def test_demo_patients_have_unique_ids_mrns_and_fictional_phone_numbers() -> None:
    patients = demo_patients()
    assert len({p.id for p in patients}) == len(patients)
    assert len({p.mrn for p in patients}) == len(patients)
    # 555-0100 to 555-0199 is the range reserved for fiction.
    assert all(p.phone.startswith("+1 555-01") for p in patients)
    assert {p.workspace_id for p in patients} == {"demo"}
    assert {p.workspace_id for p in demo_patients("other")} == {"other"}


def test_someone_in_the_demo_is_on_ozempic() -> None:
    on_it = [p for p in demo_patients() if any("Ozempic" in m for m in p.medications)]
    assert on_it


def test_cross_referencing_the_five_charted_patients_finds_real_overlaps() -> None:
    charted = [record_data(p) for p in demo_patients() if p.onboarding_complete]
    xref = cross_reference(charted)
    assert xref.patients == ("Dana", "Evan", "Farah", "Gus", "Hana")
    medications = {o.item: o.patients for o in xref.medications}
    assert medications["metformin"] == ("Dana", "Evan", "Hana")
    assert medications["semaglutide (Ozempic)"] == ("Dana", "Hana")
    allergies = {o.item: o.patients for o in xref.allergies}
    assert allergies["penicillin"] == ("Dana", "Farah", "Gus")
    providers = {o.item: o.patients for o in xref.providers}
    assert providers["Dr. Marcus Lee"] == ("Farah", "Gus")
    pairs = {(i.patient, i.first, i.second) for i in xref.interactions}
    assert ("Gus", "warfarin", "aspirin") in pairs
    assert ("Farah", "lisinopril", "spironolactone") in pairs


def test_cross_reference_uses_full_names_when_first_names_clash() -> None:
    base = demo_patients()[3]
    twin = Patient(
        workspace_id="demo",
        id="pt-dana-2",
        name="Dana Cruz",
        date_of_birth="1970-01-01",
        mrn="MRN-1",
        phone="+1 555-0199",
        onboarding_complete=True,
        medications=("metformin 500 mg daily",),
    )
    xref = cross_reference([record_data(base), record_data(twin)])
    assert xref.patients == ("Dana Whitfield", "Dana Cruz")
    assert xref.medications[0].patients == ("Dana Whitfield", "Dana Cruz")


def test_demo_agents_are_a_front_desk_and_its_team_using_the_demo_tools() -> None:
    agents = demo_agents()
    by_id = {a.id: a for a in agents}
    assert [a.id for a in agents if a.primary] == ["front-desk"]
    assert PHONE_CALL in by_id["outreach-caller"].tools
    assert PRIOR_AUTH in by_id["prior-auth"].tools
    assert RECORDS_LOOKUP in by_id["records-clerk"].tools
    assert {a.brain for a in agents} == {"rule"}
    assert {a.workspace_id for a in agents} == {"demo"}
    toolbox = build_demo_tools(MemoryStore(), latency_scale=1.0)
    for agent in agents:
        for name in agent.tools:
            assert name in toolbox


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.01])
def test_expected_latencies_are_scaled(scale: float) -> None:
    toolbox = build_demo_tools(MemoryStore(), latency_scale=scale)
    assert tool(toolbox, PHONE_CALL).expected_latency == pytest.approx(CALL_LATENCY * scale)
    assert tool(toolbox, PRIOR_AUTH).expected_latency == pytest.approx(PRIOR_AUTH_LATENCY * scale)
    assert tool(toolbox, RECORDS_LOOKUP).expected_latency == pytest.approx(LOOKUP_LATENCY * scale)


def test_at_full_scale_calls_and_prior_auths_are_too_slow_for_a_turn_and_lookups_are_not() -> None:
    toolbox = build_demo_tools(MemoryStore(), latency_scale=1.0)
    turn_budget = 1.5
    assert tool(toolbox, PHONE_CALL).expected_latency > turn_budget
    assert tool(toolbox, PRIOR_AUTH).expected_latency > turn_budget
    assert tool(toolbox, RECORDS_LOOKUP).expected_latency <= turn_budget


def test_a_negative_latency_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="latency_scale"):
        build_demo_tools(MemoryStore(), latency_scale=-1.0)


# -- phone.call ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("patient_id", "outcome", "text", "connected"),
    [
        ("pt-alice", "call_back", "Called Alice — she's getting back to us today.", True),
        ("pt-bob", "voicemail", "Left a voicemail for Bob.", False),
        (
            "pt-carol",
            "moved",
            "Learned that Carol has moved and no longer needs services.",
            True,
        ),
        ("pt-dana", "confirmed", "Called Dana — they confirmed their next appointment.", True),
    ],
)
async def test_each_patient_answers_the_phone_as_scripted(
    patient_id: str, outcome: str, text: str, connected: bool
) -> None:
    telephony = TelephonySimulator()
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0, telephony=telephony)
    result, progress = await run(toolbox, PHONE_CALL, {"patient_id": patient_id})
    first = result.data["first_name"]
    assert result.text == text
    assert result.data["outcome"] == outcome
    assert result.data["patient_id"] == patient_id
    assert progress[:2] == [f"Dialing {first}…", f"Ringing {first}…"]
    if connected:
        assert progress[2] == f"Connected with {first}."
    else:
        assert progress[2] == f"No answer — leaving a voicemail for {first}."
    assert [c.patient_id for c in telephony.calls] == [patient_id]
    assert telephony.active_calls == {}
    assert telephony.hangups == []


@pytest.mark.anyio
async def test_a_call_finds_the_patient_by_name() -> None:
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0)
    result, _ = await run(toolbox, PHONE_CALL, {"patient": "alice moreno"})
    assert result.data["patient_id"] == "pt-alice"


@pytest.mark.anyio
async def test_calling_an_unknown_patient_fails_without_dialing_or_echoing_the_name() -> None:
    telephony = TelephonySimulator()
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0, telephony=telephony)
    with pytest.raises(ToolError) as raised:
        await run(toolbox, PHONE_CALL, {"patient": "Zed Nobody"})
    assert "Zed" not in str(raised.value)
    assert telephony.calls == []


@pytest.mark.anyio
async def test_a_number_out_of_service_fails_the_call_and_leaves_no_line_open() -> None:
    telephony = TelephonySimulator({"pt-dana": CallScript(CallOutcome.OUT_OF_SERVICE)})
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0, telephony=telephony)
    with pytest.raises(ToolError, match="out of service"):
        await run(toolbox, PHONE_CALL, {"patient_id": "pt-dana"})
    assert telephony.active_calls == {}


@pytest.mark.anyio
async def test_talking_points_are_covered_on_the_call() -> None:
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0)
    result, _ = await run(
        toolbox, PHONE_CALL, {"patient_id": "pt-alice", "notes": ["Ask about her insurance."]}
    )
    assert "Ask about her insurance." in result.text
    assert result.data["notes"] == ["Ask about her insurance."]


@pytest.mark.anyio
async def test_cancelling_a_call_then_cleaning_up_hangs_up() -> None:
    telephony = TelephonySimulator(ring_forever=True)
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.01, telephony=telephony)
    phone = tool(toolbox, PHONE_CALL)
    ringing = anyio.Event()
    progress = Progress(lambda text: ringing.set() if text.startswith("Ringing") else None)
    ctx = context(progress, task_id="task-7")
    args = {"patient_id": "pt-alice"}

    async def call() -> None:
        await phone.run(ctx, args)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        with anyio.fail_after(5):
            await ringing.wait()
        assert len(telephony.active_calls) == 1
        tg.cancel_scope.cancel()
    assert phone.cleanup is not None
    assert await phone.cleanup(ctx, args) == "Hung up the call to Alice."
    assert [c.patient_id for c in telephony.hangups] == ["pt-alice"]
    assert telephony.active_calls == {}
    # Hanging up twice is harmless and reports nothing more.
    assert await phone.cleanup(ctx, args) is None
    assert telephony.statistics().hung_up == 1


@pytest.mark.anyio
async def test_clean_up_only_hangs_up_its_own_tasks_calls() -> None:
    telephony = TelephonySimulator()
    other = telephony.dial("task-other", "pt-bob", "Bob Tran", "+1 555-0102")
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0, telephony=telephony)
    phone = tool(toolbox, PHONE_CALL)
    assert phone.cleanup is not None
    assert await phone.cleanup(context(Progress(), task_id="task-mine"), {}) is None
    assert other.call_id in telephony.active_calls


@pytest.mark.anyio
async def test_with_a_small_scale_a_call_finishes_fast() -> None:
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.01)
    started = anyio.current_time()
    await run(toolbox, PHONE_CALL, {"patient_id": "pt-bob"})
    elapsed = anyio.current_time() - started
    assert CALL_LATENCY * 0.01 * 0.5 <= elapsed < 2.0


# -- payer.prior_auth ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_prior_auth_is_submitted_waits_on_the_insurer_and_is_approved() -> None:
    payer = PayerSimulator()
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0, payer=payer)
    pending_when: dict[str, int] = {}
    progress = Progress(lambda text: pending_when.setdefault(text, len(payer.pending)))
    result = await tool(toolbox, PRIOR_AUTH).run(
        context(progress), {"medication": "Ozempic", "patient_id": "pt-dana"}
    )
    waiting = "Still waiting on Bluebridge Health — a decision is expected within a minute."
    assert progress.lines == [
        "Submitting the Ozempic request to Bluebridge Health…",
        SUBMITTED,
        waiting,
    ]
    # The insurer's line is heard while the request is still pending.
    assert pending_when[waiting] == 1
    assert result.text == "Approved — Bluebridge Health approved Ozempic (reference PA-1001)."
    assert result.data["decision"] == "approved"
    assert result.data["medication"] == "Ozempic"
    assert payer.pending == {}
    assert payer.decided == {"PA-1001": Decision.APPROVED}


@pytest.mark.anyio
async def test_a_prior_auth_can_be_scripted_to_be_denied() -> None:
    payer = PayerSimulator({"OZEMPIC": Decision.DENIED})
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0, payer=payer)
    result, _ = await run(toolbox, PRIOR_AUTH, {"medication": "Ozempic"})
    assert result.text.startswith("Denied — the payer denied Ozempic: ")
    assert result.data["decision"] == "denied"
    assert result.data["reason"]


@pytest.mark.anyio
async def test_urgency_and_notes_go_with_the_request() -> None:
    payer = PayerSimulator()
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0, payer=payer)
    result, _ = await run(
        toolbox,
        PRIOR_AUTH,
        {"medication": "Ozempic", "urgent": True, "notes": ["Tried metformin first."]},
    )
    (request,) = payer.submitted
    assert request.urgent
    assert request.notes == ("Tried metformin first.",)
    assert "filed as urgent" in result.text


@pytest.mark.anyio
async def test_an_urgent_instruction_expedites_a_filed_request_and_notes_go_with_it() -> None:
    payer = PayerSimulator()
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.5, payer=payer)
    prior_auth = tool(toolbox, PRIOR_AUTH)
    assert prior_auth.amend is not None
    waiting = anyio.Event()
    progress = Progress(lambda text: waiting.set() if text.startswith(STILL_WAITING) else None)
    ctx = context(progress, task_id="task-pa")
    args = {"medication": "Ozempic", "patient_id": "pt-dana"}
    results = []

    async def request() -> None:
        results.append(await prior_auth.run(ctx, args))

    async with anyio.create_task_group() as tg:
        tg.start_soon(request)
        with anyio.fail_after(10):
            await waiting.wait()
        started = anyio.current_time()
        said = await prior_auth.amend(ctx, args, "She has been on it for two years.")
        assert said == "Added to PA-1001's notes: “She has been on it for two years.”."
        said = await prior_auth.amend(ctx, args, "mark it urgent")
        assert said == (
            "Bluebridge Health has PA-1001 as urgent now (expedited review). "
            "Added to PA-1001's notes: “Mark it urgent”."
        )
    # Honoured: decided in a quarter of the time that was left.
    assert anyio.current_time() - started < PRIOR_AUTH_LATENCY * 0.5 * 0.5 * 0.5
    (result,) = results
    assert result.text == (
        "Approved — Bluebridge Health approved Ozempic (reference PA-1001, expedited at your "
        "request). Notes sent with it: She has been on it for two years; Mark it urgent."
    )
    assert result.data["urgent"]
    assert result.data["expedited"]
    assert payer.expedited == ["PA-1001"]
    (filed,) = payer.submitted
    assert filed.urgent
    assert filed.notes == ("She has been on it for two years.", "Mark it urgent")
    # Nothing is pending any more: a late amendment changes nothing.
    assert await prior_auth.amend(ctx, args, "it's urgent") is None


@pytest.mark.anyio
async def test_a_talking_point_added_during_a_call_is_covered() -> None:
    telephony = TelephonySimulator()
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.05, telephony=telephony)
    phone = tool(toolbox, PHONE_CALL)
    assert phone.amend is not None
    ringing = anyio.Event()
    progress = Progress(lambda text: ringing.set() if text.startswith("Ringing") else None)
    ctx = context(progress, task_id="task-call")
    args = {"patient_id": "pt-bob"}
    results = []

    async def call() -> None:
        results.append(await phone.run(ctx, args))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        with anyio.fail_after(5):
            await ringing.wait()
        said = await phone.amend(ctx, args, "Mention the flu clinic.")
        assert said == "Added a talking point for the call with Bob: “Mention the flu clinic”."
    (result,) = results
    assert result.text.endswith("Also covered: Mention the flu clinic.")
    assert await phone.amend(ctx, args, "too late") is None


@pytest.mark.anyio
async def test_a_prior_auth_without_a_medication_fails() -> None:
    payer = PayerSimulator()
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0, payer=payer)
    with pytest.raises(ToolError):
        await run(toolbox, PRIOR_AUTH, {"patient_id": "pt-dana"})
    assert payer.submitted == []


@pytest.mark.anyio
async def test_cancelling_a_pending_prior_auth_then_cleaning_up_withdraws_it() -> None:
    payer = PayerSimulator(hang=True)
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.01, payer=payer)
    prior_auth = tool(toolbox, PRIOR_AUTH)
    waiting = anyio.Event()
    progress = Progress(lambda text: waiting.set() if text.startswith(STILL_WAITING) else None)
    ctx = context(progress, task_id="task-pa")
    args = {"medication": "Ozempic", "patient_id": "pt-dana"}

    async def request() -> None:
        await prior_auth.run(ctx, args)

    async with anyio.create_task_group() as tg:
        tg.start_soon(request)
        with anyio.fail_after(5):
            await waiting.wait()
        tg.cancel_scope.cancel()
    assert prior_auth.cleanup is not None
    note = await prior_auth.cleanup(ctx, args)
    assert note == "Withdrew the Ozempic prior authorization request (PA-1001)."
    assert [r.request_id for r in payer.withdrawn] == ["PA-1001"]
    assert payer.pending == {}
    assert await prior_auth.cleanup(ctx, args) is None


@pytest.mark.anyio
async def test_with_a_small_scale_a_prior_auth_finishes_fast() -> None:
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.01)
    started = anyio.current_time()
    await run(toolbox, PRIOR_AUTH, {"medication": "Ozempic"})
    elapsed = anyio.current_time() - started
    assert PRIOR_AUTH_LATENCY * 0.01 * 0.5 <= elapsed < 2.0


# -- records.lookup ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "args",
    [
        {"patient_id": "pt-dana"},
        {"patient": "Dana"},
        {"patient": "dana whitfield"},
        {"patient": "WHITFIELD"},
    ],
)
async def test_a_lookup_finds_the_patient_by_id_or_name(args: dict[str, str]) -> None:
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0)
    result, progress = await run(toolbox, RECORDS_LOOKUP, args)
    assert result.data["patient_id"] == "pt-dana"
    assert result.data["medications"][0] == "semaglutide (Ozempic) 0.5 mg weekly"
    assert result.data["allergies"] == ["penicillin"]
    assert result.data["provider"] == "Dr. Priya Natarajan"
    assert result.data["date_of_birth"] == "1968-03-14"
    assert "Dana Whitfield" in result.text
    assert progress == ["Reading Dana's chart…"]


@pytest.mark.anyio
async def test_a_lookup_echoes_only_known_fields() -> None:
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0)
    result, _ = await run(
        toolbox, RECORDS_LOOKUP, {"patient_id": "pt-evan", "fields": ["allergies", "bogus"]}
    )
    assert result.data["fields"] == ["allergies"]


@pytest.mark.anyio
@pytest.mark.parametrize("args", [{"patient": "Zed"}, {"patient_id": "pt-nobody"}, {}])
async def test_looking_up_an_unknown_patient_fails(args: dict[str, str]) -> None:
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.0)
    with pytest.raises(ToolError):
        await run(toolbox, RECORDS_LOOKUP, args)


@pytest.mark.anyio
async def test_a_lookup_never_reaches_another_workspace() -> None:
    store = await demo_directory()
    await store.save_patients(demo_patients("elsewhere"))
    toolbox = build_demo_tools(store, latency_scale=0.0)
    lookup = tool(toolbox, RECORDS_LOOKUP)
    ctx = ToolContext(workspace_id="empty", task_id=None, report_progress=Progress())
    with pytest.raises(ToolError):
        await lookup.run(ctx, {"patient_id": "pt-dana"})


@pytest.mark.anyio
async def test_an_ambiguous_name_fails_rather_than_guessing() -> None:
    store = await demo_directory()
    await store.save_patients(
        [
            Patient(
                workspace_id="demo",
                id="pt-dana-2",
                name="Dana Cruz",
                date_of_birth="1970-01-01",
                mrn="MRN-1",
                phone="+1 555-0199",
                onboarding_complete=True,
            )
        ]
    )
    toolbox = build_demo_tools(store, latency_scale=0.0)
    with pytest.raises(ToolError, match="More than one"):
        await run(toolbox, RECORDS_LOOKUP, {"patient": "Dana"})
    result, _ = await run(toolbox, RECORDS_LOOKUP, {"patient": "Dana Cruz"})
    assert result.data["patient_id"] == "pt-dana-2"


@pytest.mark.anyio
async def test_with_a_small_scale_a_lookup_finishes_fast() -> None:
    toolbox = build_demo_tools(await demo_directory(), latency_scale=0.01)
    started = anyio.current_time()
    await run(toolbox, RECORDS_LOOKUP, {"patient_id": "pt-gus"})
    assert anyio.current_time() - started < 2.0

"""Simulated telephony for the demo: ``phone.call`` with scripted outcomes.

The :class:`TelephonySimulator` is the phone network: it places calls, knows how each
patient answers (a script), and remembers every call placed, still up, or hung up, so
tests can check that a cancelled call was hung up. The tool built by
:func:`build_phone_tool` drives it with realistic pauses (scaled) and progress.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel

from agents.demo.records import find_patient, first_name
from agents.exceptions import ToolError
from agents.ownership import scoped
from agents.ports import PatientDirectory
from agents.tools import Tool, ToolContext, ToolResult

PHONE_CALL = "phone.call"
CALL_LATENCY = 3.0
"""Seconds a call takes at latency scale 1: always slow enough to run in the background."""


class CallOutcome(enum.StrEnum):
    """How a call went."""

    CALL_BACK = "call_back"
    """Reached them; they will get back to us today."""
    VOICEMAIL = "voicemail"
    """No answer; a voicemail was left."""
    MOVED = "moved"
    """Reached them; they have moved and no longer need services."""
    CONFIRMED = "confirmed"
    """Reached them; they confirmed their next appointment."""
    OUT_OF_SERVICE = "out_of_service"
    """The number is out of service: the call fails."""


@dataclass(frozen=True, slots=True)
class CallScript:
    """How one patient answers: the outcome, and the pronoun to tell it with."""

    outcome: CallOutcome
    pronoun: str = "they"


DEMO_CALL_SCRIPTS: Mapping[str, CallScript] = {
    "pt-alice": CallScript(CallOutcome.CALL_BACK, "she"),
    "pt-bob": CallScript(CallOutcome.VOICEMAIL, "he"),
    "pt-carol": CallScript(CallOutcome.MOVED, "she"),
}
"""The demo's scripts by patient id; everyone else confirms their appointment."""

_CONTRACTED = {"she": "she's", "he": "he's", "they": "they're"}
_POSSESSIVE = {"she": "her", "he": "his", "they": "their"}


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """One call the simulator placed, and for which task (``None``: run inline)."""

    call_id: str
    task_id: str | None
    patient_id: str
    patient_name: str
    phone: str


@dataclass(frozen=True, slots=True)
class TelephonyStatistics:
    calls_placed: int
    active_calls: int
    hung_up: int


class TelephonySimulator:
    """A fake phone network with scripted answers; it records what happened.

    ``scripts`` (by patient id) override the demo's; anyone unscripted gets ``default``.

    ``calls`` holds every call placed, ``active_calls`` the ones still up (by call id)
    and ``hangups`` those ended by clean-up before they finished. With
    ``ring_forever`` no call is ever answered, so a test can cancel one mid-call.
    """

    def __init__(
        self,
        scripts: Mapping[str, CallScript] | None = None,
        *,
        default: CallScript = CallScript(CallOutcome.CONFIRMED),
        ring_forever: bool = False,
    ) -> None:
        self.scripts: dict[str, CallScript] = {**DEMO_CALL_SCRIPTS, **(scripts or {})}
        self.default = default
        self.ring_forever = ring_forever
        self.calls: list[PlacedCall] = []
        self.active_calls: dict[str, PlacedCall] = {}
        self.hangups: list[PlacedCall] = []
        self._ids = itertools.count(1)

    def script_for(self, patient_id: str) -> CallScript:
        """How this patient will answer."""
        return self.scripts.get(patient_id, self.default)

    def dial(
        self, task_id: str | None, patient_id: str, patient_name: str, phone: str
    ) -> PlacedCall:
        """Place a call; it stays active until :meth:`complete` or :meth:`hang_up`."""
        call = PlacedCall(f"call-{next(self._ids)}", task_id, patient_id, patient_name, phone)
        self.calls.append(call)
        self.active_calls[call.call_id] = call
        return call

    def complete(self, call_id: str) -> None:
        """The call ended normally."""
        self.active_calls.pop(call_id, None)

    def hang_up(self, call_id: str) -> PlacedCall | None:
        """End a call early; ``None`` if it had already ended (hanging up is idempotent)."""
        call = self.active_calls.pop(call_id, None)
        if call is not None:
            self.hangups.append(call)
        return call

    def active_for(self, task_id: str | None) -> list[PlacedCall]:
        """The calls still up that *task_id* placed."""
        return [c for c in self.active_calls.values() if c.task_id == task_id]

    def statistics(self) -> TelephonyStatistics:
        return TelephonyStatistics(len(self.calls), len(self.active_calls), len(self.hangups))


def call_summary(outcome: CallOutcome, first: str, pronoun: str = "they") -> str:
    """What the caller did, without a subject: ``"left a voicemail for Bob"``.

    A roll-up puts its own subject in front: "Agent 2 left a voicemail for Bob."
    """
    contracted = _CONTRACTED.get(pronoun, f"{pronoun} is")
    possessive = _POSSESSIVE.get(pronoun, "their")
    if outcome is CallOutcome.CALL_BACK:
        return f"called {first} — {contracted} getting back to us today"
    if outcome is CallOutcome.VOICEMAIL:
        return f"left a voicemail for {first}"
    if outcome is CallOutcome.MOVED:
        return f"learned that {first} has moved and no longer needs services"
    if outcome is CallOutcome.CONFIRMED:
        return f"called {first} — {pronoun} confirmed {possessive} next appointment"
    return f"couldn't reach {first}: the number on file is out of service"


def build_phone_tool(
    directory: PatientDirectory, telephony: TelephonySimulator, *, latency_scale: float
) -> Tool:
    """``phone.call``: call one patient and report how it went.

    Args: ``patient_id`` or ``patient`` (a name); optional ``purpose`` and ``notes``
    (talking points, a list of strings; more can be added while the call is up, by the
    tool's amendment). Raises :class:`~agents.exceptions.ToolError`
    for an unknown patient or a number out of service. Clean-up hangs up.
    """
    latency = CALL_LATENCY * latency_scale
    # Talking points added while a call is up, by task; taken when the call ends.
    added: dict[str | None, list[str]] = {}
    calling: dict[str | None, str] = {}

    async def call(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        # Talking points that came while the call was starting are kept, not reset.
        added.setdefault(ctx.task_id, [])
        try:
            return await _call(ctx, args)
        finally:
            added.pop(ctx.task_id, None)
            calling.pop(ctx.task_id, None)

    async def _call(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        query = str(args.get("patient_id") or args.get("patient") or "")
        patient = await find_patient(scoped(directory, ctx.patient_scope), ctx.workspace_id, query)
        calling[ctx.task_id] = first_name(patient.name)
        first = first_name(patient.name)
        script = telephony.script_for(patient.id)
        placed = telephony.dial(ctx.task_id, patient.id, patient.name, patient.phone)
        # No try/finally hang-up here: a cancelled call stays up until the runtime runs
        # the clean-up, which is what reports "Hung up …" in the task's result.
        ctx.report_progress(f"Dialing {first}…")
        await anyio.sleep(latency * 0.2)
        ctx.report_progress(f"Ringing {first}…")
        await anyio.sleep(latency * 0.4)
        if telephony.ring_forever:
            await anyio.sleep_forever()
        if script.outcome is CallOutcome.OUT_OF_SERVICE:
            telephony.complete(placed.call_id)
            raise ToolError("The number on file is out of service.")
        if script.outcome is CallOutcome.VOICEMAIL:
            ctx.report_progress(f"No answer — leaving a voicemail for {first}.")
        else:
            ctx.report_progress(f"Connected with {first}.")
        await anyio.sleep(latency * 0.4)
        telephony.complete(placed.call_id)
        summary = call_summary(script.outcome, first, script.pronoun)
        notes = [str(n) for n in args.get("notes") or ()] + added.get(ctx.task_id, [])
        text = summary[0].upper() + summary[1:] + "."
        if notes:
            text += " Also covered: " + "; ".join(notes) + "."
        return ToolResult(
            text,
            {
                "kind": "call",
                "call_id": placed.call_id,
                "patient_id": patient.id,
                "name": patient.name,
                "first_name": first,
                "outcome": script.outcome.value,
                "pronoun": script.pronoun,
                "summary": summary,
                "notes": notes,
            },
        )

    async def amend(ctx: ToolContext, args: Mapping[str, Any], instruction: str) -> str | None:
        await anyio.lowlevel.checkpoint()
        point = " ".join(instruction.split()).rstrip(".")
        if not point or any(
            c.task_id == ctx.task_id and c.call_id not in telephony.active_calls
            for c in telephony.calls
        ):
            return None  # the call is over: too late to bring it up
        added.setdefault(ctx.task_id, []).append(point)
        who = calling.get(ctx.task_id, "the patient")
        return f"Added a talking point for the call with {who}: “{point}”."

    async def hang_up(ctx: ToolContext, args: Mapping[str, Any]) -> str | None:
        await anyio.lowlevel.checkpoint()
        ended = [telephony.hang_up(c.call_id) for c in telephony.active_for(ctx.task_id)]
        names = [first_name(c.patient_name) for c in ended if c is not None]
        if not names:
            return None
        return f"Hung up the call to {', '.join(names)}."

    return Tool(
        name=PHONE_CALL,
        description="Call a patient by phone (by id or name) and report how it went.",
        expected_latency=latency,
        run=call,
        cleanup=hang_up,
        amend=amend,
    )

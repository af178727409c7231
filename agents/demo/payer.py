"""A simulated payer for the demo's prior authorizations: ``payer.prior_auth``.

The :class:`PayerSimulator` is the insurer and its pharmacy-benefit desk: it takes
requests, decides them by script (approved unless told otherwise), and remembers every
request submitted, pending or withdrawn. The tool built by :func:`build_prior_auth_tool`
submits, reports progress while the request is pending ("Still waiting on Bluebridge
Health — a decision is expected within a minute."), and returns the decision. Clean-up
withdraws the request. Instructions that arrive while the request is pending go with
it: a note is added to it, and "it's urgent" expedites it — the simulator then decides
sooner, and the result says it was expedited.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import anyio
import anyio.lowlevel

from agents.demo.records import find_patient, first_name
from agents.exceptions import ToolError
from agents.ownership import scoped
from agents.ports import PatientDirectory
from agents.tools import Tool, ToolContext, ToolResult

PRIOR_AUTH = "payer.prior_auth"
PRIOR_AUTH_LATENCY = 6.0
"""Seconds from submission to decision at latency scale 1."""

STILL_WAITING = "Still waiting on"
"""How the progress report while a request is pending begins."""
SUBMITTED = "Submitted to the payer."
EXPEDITE_FACTOR = 0.25
"""An expedited request is decided in this share of the time it had left."""
URGENT_PHRASES = (
    "urgent",
    "urgently",
    "asap",
    "expedite",
    "expedited",
    "rush",
    "stat",
    "priority",
    "emergency",
    "as soon as possible",
    "right away",
    "ran out",
    "run out",
    "running out",
)
"""What makes an instruction ask for an expedited review."""
_URGENT = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in URGENT_PHRASES) + r")\b", re.I)


def is_urgent(text: str) -> bool:
    """Whether *text* asks for an expedited review ("mark it urgent", "she ran out")."""
    return _URGENT.search(text) is not None


_NOTE_VERB = re.compile(
    r"^(?:please\s+)?(?:add|mention|note|include|say|tell (?:them|the payer|the insurer))"
    r"(?:\s+a note)?(?:\s+that)?\s+",
    re.I,
)


def note_from(instruction: str) -> str:
    """An instruction as the note filed with a request: "mention she …" → "She …"."""
    text = _NOTE_VERB.sub("", " ".join(instruction.split()))
    return text[:1].upper() + text[1:]


def still_waiting(payer: str, seconds: float) -> str:
    """The progress while a request is pending: who decides, and when it is expected."""
    if seconds < 60:
        when = "within a minute"
    elif seconds < 3600:
        when = "within the hour"
    else:
        when = "within a few days"
    return f"{STILL_WAITING} {payer} — a decision is expected {when}."


class Decision(enum.StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class PriorAuthRequest:
    """One request sent to the payer, and by which task (``None``: run inline)."""

    request_id: str
    task_id: str | None
    medication: str
    patient_id: str | None
    payer: str
    urgent: bool
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PayerStatistics:
    submitted: int
    pending: int
    withdrawn: int
    decided: int
    expedited: int = 0


class PayerSimulator:
    """A fake payer with scripted decisions; it records what happened.

    ``decisions`` maps a medication (any case) to its decision; others get
    ``default``. With ``hang`` no decision ever comes, so a test can cancel a request
    while it is pending. ``submitted`` holds every request, ``pending`` those awaiting a
    decision (by id), ``withdrawn`` those withdrawn by clean-up, ``decided`` the rest.
    """

    def __init__(
        self,
        decisions: Mapping[str, Decision] | None = None,
        *,
        default: Decision = Decision.APPROVED,
        hang: bool = False,
        denial_reason: str = "the plan requires step therapy with a first-line drug",
    ) -> None:
        self.decisions = {k.lower(): v for k, v in (decisions or {}).items()}
        self.default = default
        self.hang = hang
        self.denial_reason = denial_reason
        self.submitted: list[PriorAuthRequest] = []
        self.pending: dict[str, PriorAuthRequest] = {}
        self.withdrawn: list[PriorAuthRequest] = []
        self.decided: dict[str, Decision] = {}
        self.expedited: list[str] = []
        """Ids of the requests made urgent after they were filed, in order."""
        self._ids = itertools.count(1001)

    def submit(
        self,
        task_id: str | None,
        medication: str,
        *,
        patient_id: str | None = None,
        payer: str = "the payer",
        urgent: bool = False,
        notes: tuple[str, ...] = (),
    ) -> PriorAuthRequest:
        """File a request; it is pending until :meth:`decide` or :meth:`withdraw`."""
        request = PriorAuthRequest(
            f"PA-{next(self._ids)}", task_id, medication, patient_id, payer, urgent, notes
        )
        self.submitted.append(request)
        self.pending[request.request_id] = request
        return request

    def amend(
        self, task_id: str | None, *, note: str | None = None, urgent: bool = False
    ) -> list[tuple[PriorAuthRequest, PriorAuthRequest]]:
        """Add *note* to, and if *urgent* expedite, the requests *task_id* has pending.

        Returns each request as it was and as it is now (empty: nothing pending).
        """
        changed: list[tuple[PriorAuthRequest, PriorAuthRequest]] = []
        for request in self.pending_for(task_id):
            notes = request.notes + ((note,) if note else ())
            updated = replace(request, urgent=request.urgent or urgent, notes=notes)
            self.pending[request.request_id] = updated
            self.submitted = [
                updated if r.request_id == updated.request_id else r for r in self.submitted
            ]
            if updated.urgent and not request.urgent:
                self.expedited.append(request.request_id)
            changed.append((request, updated))
        return changed

    def decide(self, request_id: str) -> Decision:
        """Decide a pending request by script."""
        request = self.pending.pop(request_id)
        decision = self.decisions.get(request.medication.lower(), self.default)
        self.decided[request_id] = decision
        return decision

    def withdraw(self, request_id: str) -> PriorAuthRequest | None:
        """Withdraw a pending request; ``None`` if it was no longer pending (idempotent)."""
        request = self.pending.pop(request_id, None)
        if request is not None:
            self.withdrawn.append(request)
        return request

    def pending_for(self, task_id: str | None) -> list[PriorAuthRequest]:
        """The requests *task_id* filed that still await a decision."""
        return [r for r in self.pending.values() if r.task_id == task_id]

    def statistics(self) -> PayerStatistics:
        return PayerStatistics(
            len(self.submitted),
            len(self.pending),
            len(self.withdrawn),
            len(self.decided),
            len(self.expedited),
        )


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "urgent"}
    return bool(value)


def build_prior_auth_tool(
    directory: PatientDirectory, payer: PayerSimulator, *, latency_scale: float
) -> Tool:
    """``payer.prior_auth``: submit a prior authorization and wait for the decision.

    Args: ``medication`` (required); optional ``patient_id`` or ``patient`` (a name:
    the request goes to their insurer), ``urgent`` (bool) and ``notes`` (a list of
    strings sent with the request). Raises :class:`ToolError` without a medication or
    for an unknown patient. Clean-up withdraws the pending request; an amendment adds a
    note to it and, when urgent (:func:`is_urgent`), expedites it.
    """
    latency = PRIOR_AUTH_LATENCY * latency_scale
    # Per running call (by task): the wake-up of its wait for a decision, and what was
    # said before the request was filed. Both are emptied when the call ends.
    waiting: dict[str | None, anyio.Event] = {}
    early: dict[str | None, list[tuple[str, bool]]] = {}

    async def prior_auth(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        medication = str(args.get("medication") or "").strip()
        if not medication:
            raise ToolError("No medication was named for the prior authorization.")
        # What came while the call was starting (see amend) is kept, not reset.
        early.setdefault(ctx.task_id, [])
        try:
            query = str(args.get("patient_id") or args.get("patient") or "")
            patient = (
                await find_patient(scoped(directory, ctx.patient_scope), ctx.workspace_id, query)
                if query
                else None
            )
            insurer = patient.insurer if patient is not None and patient.insurer else "the payer"
            notes = tuple(str(n) for n in args.get("notes") or ())
            urgent = _truthy(args.get("urgent"))
            ctx.report_progress(f"Submitting the {medication} request to {insurer}…")
            said = early.pop(ctx.task_id, [])
            request = payer.submit(
                ctx.task_id,
                medication,
                patient_id=None if patient is None else patient.id,
                payer=insurer,
                urgent=urgent or any(u for _, u in said),
                notes=notes + tuple(n for n, _ in said),
            )
            await anyio.sleep(latency * 0.25)
            ctx.report_progress(SUBMITTED)
            await anyio.sleep(latency * 0.25)
            # Reported while the request is pending: it is what the person hears meanwhile.
            ctx.report_progress(still_waiting(insurer, latency * 0.5))
            if payer.hang:
                await anyio.sleep_forever()
            await _wait_for_decision(request, latency * 0.5)
        finally:
            early.pop(ctx.task_id, None)
            waiting.pop(ctx.task_id, None)
        final = payer.pending.get(request.request_id, request)
        decision = payer.decide(request.request_id)
        if final.urgent and not request.urgent:
            filed = f"reference {request.request_id}, expedited at your request"
        else:
            filed = f"reference {request.request_id}" + (
                ", filed as urgent" if final.urgent else ""
            )
        if decision is Decision.APPROVED:
            text = f"Approved — {insurer} approved {medication} ({filed})."
            reason = ""
        else:
            reason = payer.denial_reason
            text = f"Denied — {insurer} denied {medication}: {reason} ({filed})."
        if final.notes:
            text += " Notes sent with it: " + "; ".join(n.rstrip(".") for n in final.notes) + "."
        return ToolResult(
            text,
            {
                "kind": "prior_auth",
                "request_id": request.request_id,
                "medication": medication,
                "patient_id": None if patient is None else patient.id,
                "first_name": None if patient is None else first_name(patient.name),
                "payer": insurer,
                "decision": decision.value,
                "reason": reason,
                "urgent": final.urgent,
                "expedited": final.urgent and not request.urgent,
                "notes": list(final.notes),
            },
        )

    async def _wait_for_decision(request: PriorAuthRequest, seconds: float) -> None:
        """Wait for the payer's decision; an expedite shortens what is left of the wait."""
        deadline = anyio.current_time() + seconds
        expedited = request.urgent
        while (left := deadline - anyio.current_time()) > 0:
            wake = waiting[request.task_id] = anyio.Event()
            with anyio.move_on_after(left):
                await wake.wait()
            current = payer.pending.get(request.request_id, request)
            if current.urgent and not expedited:
                expedited = True
                now = anyio.current_time()
                deadline = now + (deadline - now) * EXPEDITE_FACTOR

    async def amend(ctx: ToolContext, args: Mapping[str, Any], instruction: str) -> str | None:
        await anyio.lowlevel.checkpoint()
        note = note_from(instruction)
        if not note:
            return None
        urgent = is_urgent(note)
        changed = payer.amend(ctx.task_id, note=note, urgent=urgent)
        if not changed:
            if any(r.task_id == ctx.task_id for r in payer.submitted):
                return None  # decided or withdrawn: too late to change it
            # The call is starting and has not filed yet: the note goes with the filing.
            early.setdefault(ctx.task_id, []).append((note, urgent))
            return "That goes with the request when it is filed."
        wake = waiting.get(ctx.task_id)
        if wake is not None:
            wake.set()
        parts = []
        for before, after in changed:
            if after.urgent and not before.urgent:
                parts.append(
                    f"{after.payer} has {after.request_id} as urgent now (expedited review)."
                )
            parts.append(f"Added to {after.request_id}'s notes: “{note}”.")
        return " ".join(parts)

    async def withdraw(ctx: ToolContext, args: Mapping[str, Any]) -> str | None:
        await anyio.lowlevel.checkpoint()
        gone = [payer.withdraw(r.request_id) for r in payer.pending_for(ctx.task_id)]
        withdrawn = [r for r in gone if r is not None]
        if not withdrawn:
            return None
        ids = ", ".join(r.request_id for r in withdrawn)
        return f"Withdrew the {withdrawn[0].medication} prior authorization request ({ids})."

    return Tool(
        name=PRIOR_AUTH,
        description="Submit a prior authorization for a medication to the patient's payer "
        "and wait for the decision.",
        expected_latency=latency,
        run=prior_auth,
        cleanup=withdraw,
        amend=amend,
    )

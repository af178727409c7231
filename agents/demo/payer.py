"""A simulated payer for the demo's prior authorizations: ``payer.prior_auth``.

The :class:`PayerSimulator` is the insurer and its pharmacy-benefit desk: it takes
requests, decides them by script (approved unless told otherwise), and remembers every
request submitted, pending or withdrawn. The tool built by :func:`build_prior_auth_tool`
submits, reports progress while the request is pending ("Still waiting on the pharmacy
— I'll let you know."), and returns the decision. Clean-up withdraws the request.
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
from agents.ports import PatientDirectory
from agents.tools import Tool, ToolContext, ToolResult

PRIOR_AUTH = "payer.prior_auth"
PRIOR_AUTH_LATENCY = 6.0
"""Seconds from submission to decision at latency scale 1."""

STILL_WAITING = "Still waiting on the pharmacy — I'll let you know."
SUBMITTED = "Submitted to the payer."


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
            len(self.submitted), len(self.pending), len(self.withdrawn), len(self.decided)
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
    for an unknown patient. Clean-up withdraws the pending request.
    """
    latency = PRIOR_AUTH_LATENCY * latency_scale

    async def prior_auth(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        medication = str(args.get("medication") or "").strip()
        if not medication:
            raise ToolError("No medication was named for the prior authorization.")
        query = str(args.get("patient_id") or args.get("patient") or "")
        patient = await find_patient(directory, ctx.workspace_id, query) if query else None
        insurer = patient.insurer if patient is not None and patient.insurer else "the payer"
        notes = tuple(str(n) for n in args.get("notes") or ())
        urgent = _truthy(args.get("urgent"))
        ctx.report_progress(f"Submitting the {medication} request to {insurer}…")
        request = payer.submit(
            ctx.task_id,
            medication,
            patient_id=None if patient is None else patient.id,
            payer=insurer,
            urgent=urgent,
            notes=notes,
        )
        await anyio.sleep(latency * 0.25)
        ctx.report_progress(SUBMITTED)
        await anyio.sleep(latency * 0.25)
        # Reported while the request is pending: it is what the person hears meanwhile.
        ctx.report_progress(STILL_WAITING)
        if payer.hang:
            await anyio.sleep_forever()
        await anyio.sleep(latency * 0.5)
        decision = payer.decide(request.request_id)
        filed = f"reference {request.request_id}" + (", filed as urgent" if urgent else "")
        if decision is Decision.APPROVED:
            text = f"Approved — {insurer} approved {medication} ({filed})."
            reason = ""
        else:
            reason = payer.denial_reason
            text = f"Denied — {insurer} denied {medication}: {reason} ({filed})."
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
                "urgent": urgent,
                "notes": list(notes),
            },
        )

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
    )

"""Callers: who is on a conversation's phone line, and whether they have shown who they are.

A caller (``Principal.call``) speaks through a bridge that cannot vouch for them. The
conversation's agent verifies them the way a clinic's front desk does, by full name and
date of birth against the directory (:class:`~agents.verification.CallerVerification`),
before it speaks of any record or starts any work about them. Until then the
conversation's patient scope is :data:`~agents.ownership.NOBODY`, and whatever the
caller asked for that needs a record waits (held) until they are verified.

Invariants: verification is per call (a second call on the same line starts again);
each try is audited as ``CALLER_VERIFICATION`` with its outcome only — never the name,
the date or the record matched; at most one turn waits per call (the latest), and it
is taken up once, right after the caller is verified.
"""

from __future__ import annotations

from collections import OrderedDict

from agents.models import Principal
from agents.ports import (
    AuditEntry,
    AuditOutcome,
    AuditReason,
    AuditSink,
    AuditType,
    PatientDirectory,
)
from agents.verification import (
    CALLS_KEPT,
    CallerCalls,
    CallerVerification,
    VerificationOutcome,
    VerificationResult,
)

ASK_TO_VERIFY = (
    "I can help with that. First I need to confirm who I'm speaking with: "
    "please tell me your full name and date of birth."
)
NOT_MATCHED = (
    "I'm sorry, I couldn't match that to our records. "
    "Please tell me your full name and date of birth once more."
)
LOCKED_OUT = (
    "I'm sorry, I wasn't able to confirm who you are, so I can't discuss any records on "
    "this call. I can have someone from our front desk call you back, or you can stay on "
    "the line for a member of staff."
)
COULD_NOT_CHECK = "I'm sorry, I can't check that just now. Please try again in a moment."

_REASONS = {
    VerificationOutcome.VERIFIED: AuditReason.VERIFIED,
    VerificationOutcome.NO_MATCH: AuditReason.NO_MATCH,
    VerificationOutcome.LOCKED: AuditReason.LOCKED,
}


def verified_text(name: str) -> str:
    """What a verified caller hears: thanks, by their first name."""
    return f"Thank you, {name.split()[0]}. I've confirmed who you are."


def outcome_text(result: VerificationResult) -> str:
    """What a caller hears after a try that did not verify them."""
    return LOCKED_OUT if result.outcome is VerificationOutcome.LOCKED else NOT_MATCHED


class CallerDesk:
    """The calls of one conversation: the current one, each call's verification, and
    the turn a caller's verification holds back."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self._calls = CallerCalls()
        self.call: str | None = None
        """The call whose caller spoke last; ``None`` once someone else speaks."""
        # One held turn per call, for the calls the ledger still remembers.
        self._held: OrderedDict[str, str] = OrderedDict()

    @property
    def current(self) -> CallerVerification | None:
        """The verification of the caller on the line, if a caller is speaking."""
        return None if self.call is None else self._calls[self.call]

    def enter(self, call: str | None) -> CallerVerification | None:
        """The turn being answered is *call*'s (``None``: not a caller's)."""
        self.call = call
        return self.current

    def hold(self, text: str) -> None:
        """Keep the current caller's request for when they are verified (the latest)."""
        assert self.call is not None
        self._held[self.call] = text
        self._held.move_to_end(self.call)
        while len(self._held) > CALLS_KEPT:
            self._held.popitem(last=False)

    def take_held(self) -> str | None:
        """The request the current caller made before they were verified, taken once."""
        return None if self.call is None else self._held.pop(self.call, None)

    async def verify(
        self,
        speaker: Principal,
        directory: PatientDirectory | None,
        audit: AuditSink,
        *,
        name: str,
        date_of_birth: str,
    ) -> tuple[VerificationResult, str | None]:
        """Judge one try of the current caller against the workspace's whole directory:
        the outcome, and the name on the record it matched.

        The try is audited before its outcome takes effect; raises
        :class:`~agents.exceptions.Unavailable` if it cannot be (then it does not count).
        """
        verification = self.current
        assert verification is not None
        patients = [] if directory is None else await directory.list_patients(speaker.workspace_id)
        # Judged on a copy: a try that cannot be audited must not count, or verify.
        trial = CallerVerification(verification.max_attempts)
        trial.attempts, trial.patient_id = verification.attempts, verification.patient_id
        result = trial.attempt(patients, name, date_of_birth)
        await audit.record(
            AuditEntry(
                type=AuditType.CALLER_VERIFICATION,
                actor=speaker,
                channel="agent:verify_caller",
                outcome=AuditOutcome.SUCCESS
                if result.outcome is VerificationOutcome.VERIFIED
                else AuditOutcome.DENIED,
                reason=_REASONS[result.outcome],
                conversation_id=self.conversation_id,
                on_behalf_of=(speaker.act_for,) if speaker.act_for else (),
            )
        )
        verification.attempts, verification.patient_id = trial.attempts, trial.patient_id
        matched = next((p.name for p in patients if p.id == result.patient_id), None)
        return result, matched


__all__ = [
    "ASK_TO_VERIFY",
    "COULD_NOT_CHECK",
    "LOCKED_OUT",
    "NOT_MATCHED",
    "CallerDesk",
    "outcome_text",
    "verified_text",
]

"""The demo workspace's words for the rule brain: its kinds of work, medicines and
the onboarding group, as a :class:`~agents.brains.rule.lexicon.Lexicon`.

This is data of the demo, not of the brain: another workspace gives its own (or none)."""

from __future__ import annotations

from agents.brains.rule.lexicon import Lexicon, PatientGroup, WorkKind
from agents.demo.payer import PRIOR_AUTH, URGENT_PHRASES
from agents.demo.records import RECORDS_LOOKUP
from agents.demo.telephony import PHONE_CALL


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


BRANDS = frozenset(
    [
        "ozempic",
        "wegovy",
        "mounjaro",
        "zepbound",
        "trulicity",
        "rybelsus",
        "jardiance",
        "farxiga",
        "humira",
        "enbrel",
        "dupixent",
        "stelara",
        "eliquis",
        "xarelto",
        "entresto",
        "lantus",
        "victoza",
        "saxenda",
    ]
)
GENERICS = frozenset(
    [
        "semaglutide",
        "tirzepatide",
        "liraglutide",
        "adalimumab",
        "apixaban",
        "metformin",
        "lisinopril",
        "insulin",
        "atorvastatin",
        "warfarin",
        "spironolactone",
        "furosemide",
        "aspirin",
        "ibuprofen",
    ]
)

CALLS = WorkKind(
    shape="call",
    tool=PHONE_CALL,
    label="call",
    plural="calls",
    nouns=_phrases(
        "call, calls, phone call, phone calls, outreach, ringing, calling, phoning, dialing, "
        "onboarding calls"
    ),
    aliases=_phrases("caller, callers, the line"),
    verbs=_phrases(
        "call, phone, ring, dial, telephone, contact, reach, reach out to, reach out, "
        "get in touch with, get in touch, follow up with, check in with, chase up, chase, "
        "give a call, give a ring, get hold of, touch base with, do outreach"
    ),
)
PRIOR_AUTHS = WorkKind(
    shape="prior_auth",
    tool=PRIOR_AUTH,
    label="prior auth",
    plural="prior auths",
    nouns=_phrases(
        "prior auth, prior auths, prior authorization, prior authorizations, "
        "prior authorisation, prior approval, preauth, pre auth, pre authorization, "
        "preauthorization, pa, pas, authorization, authorizations, authorisation, "
        "insurance approval, coverage approval"
    ),
    aliases=_phrases("insurer, insurers, payer, payers, insurance company, the plan, their plan"),
    verbs=_phrases(
        "authorize, authorise, authorized, authorised, approve, approved, get approved, "
        "get covered, covered, approval, needs approval"
    ),
)
RECORDS = WorkKind(
    shape="records",
    tool=RECORDS_LOOKUP,
    label="records lookup",
    plural="records lookups",
    nouns=_phrases("records lookup, records lookups, lookup, lookups, chart pull, chart lookup"),
    verbs=_phrases("look up, pull up, pull, fetch, cross reference, compare"),
)

ONBOARDING = PatientGroup(
    name="onboarding",
    flag="onboarding_complete",
    phrases=_phrases(
        "onboarding, onboarded, onboard, intake, registration, registered, signup, sign up, "
        "signing up, signed up, paperwork, enrollment, enrolled, enroll, forms"
    ),
    nicknames=_phrases("stragglers, straggler, onboarding stragglers"),
)

DEMO_LEXICON = Lexicon(
    kinds=(CALLS, PRIOR_AUTHS, RECORDS),
    medicines=BRANDS | GENERICS,
    brands=BRANDS,
    groups=(ONBOARDING,),
    urgent=URGENT_PHRASES,
    words=frozenset(
        [
            "patient",
            "patients",
            "everyone",
            "everybody",
            "every",
            "finished",
            "onboarding",
            "stragglers",
            "authorization",
            "prior",
            "insurer",
            "payer",
            "urgent",
            "cancel",
            "request",
        ]
    ),
)
"""Everything the rule brain knows of the demo beyond its grammar."""

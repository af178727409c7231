"""The demo workspace: fictional patients, the front desk and its team, and simulated
telephony, payer and records tools with scripted outcomes and scalable latency."""

from __future__ import annotations

from agents.demo.patients import DEMO_WORKSPACE, demo_patients
from agents.demo.payer import (
    PRIOR_AUTH,
    PRIOR_AUTH_LATENCY,
    Decision,
    PayerSimulator,
    PriorAuthRequest,
)
from agents.demo.records import (
    LOOKUP_LATENCY,
    RECORDS_LOOKUP,
    CrossReference,
    cross_reference,
)
from agents.demo.telephony import (
    CALL_LATENCY,
    PHONE_CALL,
    CallOutcome,
    CallScript,
    PlacedCall,
    TelephonySimulator,
)
from agents.demo.workspace import (
    FRONT_DESK,
    OUTREACH_CALLER,
    PRIOR_AUTH_SPECIALIST,
    RECORDS_CLERK,
    build_demo_tools,
    demo_agents,
)

__all__ = [
    "CALL_LATENCY",
    "DEMO_WORKSPACE",
    "FRONT_DESK",
    "LOOKUP_LATENCY",
    "OUTREACH_CALLER",
    "PHONE_CALL",
    "PRIOR_AUTH",
    "PRIOR_AUTH_LATENCY",
    "PRIOR_AUTH_SPECIALIST",
    "RECORDS_CLERK",
    "RECORDS_LOOKUP",
    "CallOutcome",
    "CallScript",
    "CrossReference",
    "Decision",
    "PayerSimulator",
    "PlacedCall",
    "PriorAuthRequest",
    "TelephonySimulator",
    "build_demo_tools",
    "cross_reference",
    "demo_agents",
    "demo_patients",
]

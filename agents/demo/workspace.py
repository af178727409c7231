"""The demo workspace: its agents, and the tools they use.

The agents are plain :class:`~agents.models.AgentDefinition` data, defined the way any
workspace defines its own: the front desk is the primary agent, and the others are
the team it borrows for slow work. Nothing here is specific to sub-agents.
"""

from __future__ import annotations

from agents.demo.patients import DEMO_WORKSPACE
from agents.demo.payer import PRIOR_AUTH, PayerSimulator, build_prior_auth_tool
from agents.demo.records import RECORDS_LOOKUP, build_records_tool
from agents.demo.telephony import PHONE_CALL, TelephonySimulator, build_phone_tool
from agents.models import AgentDefinition
from agents.ports import PatientDirectory
from agents.tools import ToolBox

FRONT_DESK = "front-desk"
OUTREACH_CALLER = "outreach-caller"
PRIOR_AUTH_SPECIALIST = "prior-auth"
RECORDS_CLERK = "records-clerk"


def demo_agents(workspace_id: str = DEMO_WORKSPACE) -> list[AgentDefinition]:
    """The demo's agents: the front desk (primary) first, then its team."""
    return [
        AgentDefinition(
            workspace_id=workspace_id,
            id=FRONT_DESK,
            name="Front desk",
            description="Talks with patients and staff; hands slow work to the team.",
            instructions="Answer directly when you can. Anything slow — calls, prior "
            "authorizations, several records at once — goes to the team in the "
            "background; keep talking, and report back when it is done.",
            tools=(RECORDS_LOOKUP,),
            brain="rule",
            primary=True,
        ),
        AgentDefinition(
            workspace_id=workspace_id,
            id=OUTREACH_CALLER,
            name="Outreach caller",
            description="Calls patients by phone and reports how each call went.",
            instructions="Call the patient you are given, follow the talking points, and "
            "report the outcome in one sentence.",
            tools=(PHONE_CALL,),
            brain="rule",
        ),
        AgentDefinition(
            workspace_id=workspace_id,
            id=PRIOR_AUTH_SPECIALIST,
            name="Prior-auth specialist",
            description="Files prior authorizations with payers and follows them up.",
            instructions="Submit the prior authorization, wait for the payer's decision, "
            "and report it together with anything you were asked to add.",
            tools=(PRIOR_AUTH,),
            brain="rule",
        ),
        AgentDefinition(
            workspace_id=workspace_id,
            id=RECORDS_CLERK,
            name="Records clerk",
            description="Looks up patient charts.",
            instructions="Read the chart you are given and report it accurately.",
            tools=(RECORDS_LOOKUP,),
            brain="rule",
        ),
    ]


def build_demo_tools(
    directory: PatientDirectory,
    *,
    latency_scale: float,
    telephony: TelephonySimulator | None = None,
    payer: PayerSimulator | None = None,
) -> ToolBox:
    """The demo's tools: ``phone.call``, ``payer.prior_auth`` and ``records.lookup``.

    Every latency is multiplied by *latency_scale* (``SWITCHBOARD_TOOL_LATENCY_SCALE``
    as read by the caller). Pass simulators to script or inspect them; fresh ones with
    the demo's scripts are made otherwise. Raises :class:`ValueError` for a negative
    scale.
    """
    if latency_scale < 0:
        raise ValueError("latency_scale must not be negative")
    return ToolBox(
        [
            build_phone_tool(
                directory,
                TelephonySimulator() if telephony is None else telephony,
                latency_scale=latency_scale,
            ),
            build_prior_auth_tool(
                directory,
                PayerSimulator() if payer is None else payer,
                latency_scale=latency_scale,
            ),
            build_records_tool(directory, latency_scale=latency_scale),
        ]
    )

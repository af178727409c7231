"""The demo workspace: its agents, and the tools they use.

The agents are declared in the demo's workspace file (``agents/demo/workspace.toml``),
the way any workspace declares its own: the front desk is the primary agent, and the
others are the team it borrows for slow work. The tools are the builtin simulators.
"""

from __future__ import annotations

from agents.demo.file import demo_spec
from agents.demo.patients import DEMO_WORKSPACE
from agents.demo.payer import PayerSimulator, build_prior_auth_tool
from agents.demo.records import build_records_tool
from agents.demo.telephony import TelephonySimulator, build_phone_tool
from agents.models import AgentDefinition
from agents.ports import PatientDirectory
from agents.tools import ToolBox

FRONT_DESK = "front-desk"
OUTREACH_CALLER = "outreach-caller"
PRIOR_AUTH_SPECIALIST = "prior-auth"
RECORDS_CLERK = "records-clerk"


def demo_agents(workspace_id: str = DEMO_WORKSPACE) -> list[AgentDefinition]:
    """The demo's agents, from its file: the front desk (primary) first, then its team."""
    return demo_spec().agent_definitions(workspace_id)


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

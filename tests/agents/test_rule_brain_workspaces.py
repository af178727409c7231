"""The rule brain in a workspace that is not the demo: it reads the team's own agents
and tools, starts nothing it was told not to, and its lexicon comes from plain data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from agents.brains import Delegate, Reply, TaskSummary, ToolInfo, Turn
from agents.brains.rule import RuleBrain
from agents.brains.rule.lexicon import EMPTY_LEXICON, Lexicon
from agents.brains.rule.reading import Workspace
from agents.demo.lexicon import DEMO_LEXICON
from agents.demo.patients import demo_patients
from agents.memory import MemoryStore
from agents.models import AgentDefinition, Patient
from agents.tools import Tool, ToolContext, ToolResult

pytestmark = pytest.mark.anyio

WS = "billing"


async def _nothing(ctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    return ToolResult("done")


REMINDER = Tool(
    "billing.remind",
    "Send a payment reminder for an overdue invoice to a patient.",
    5.0,
    _nothing,
    parameters={
        "type": "object",
        "properties": {"patient": {"type": "string"}, "message": {"type": "string"}},
        "required": ["patient"],
    },
)
SCHEDULE = Tool("calendar.book", "Book an appointment slot.", 5.0, _nothing)

TEAM = (
    AgentDefinition(WS, "desk", "Desk", "Talks with staff.", "", (), "rule", primary=True),
    AgentDefinition(
        WS,
        "collector",
        "Billing assistant",
        "Chases overdue invoices and sends payment reminders.",
        "",
        ("billing.remind",),
        "rule",
        examples=("send Dana a payment reminder", "chase the overdue invoice for Bob"),
    ),
    AgentDefinition(
        WS,
        "scheduler",
        "Scheduler",
        "Books and moves appointments.",
        "",
        ("calendar.book",),
        "rule",
        examples=("book Evan an appointment next week", "move Gus's appointment"),
    ),
)


async def brain() -> RuleBrain:
    store = MemoryStore()
    await store.save_patients(demo_patients(WS))
    return RuleBrain(store)  # the demo's lexicon, for a workspace without its tools


TOOLS = tuple(
    ToolInfo(t.name, t.description, t.parameters, t.expected_latency) for t in (REMINDER, SCHEDULE)
)


async def respond(text: str, tasks: tuple[TaskSummary, ...] = ()) -> Any:
    turn = Turn(text, TEAM[0], TEAM, tasks, "conv-1", tools=TOOLS)
    return await (await brain()).respond(turn)


async def test_a_request_that_fits_an_agents_examples_is_delegated_with_its_tool() -> None:
    action = await respond("please send Dana a payment reminder")
    assert isinstance(action, Delegate)
    (assignment,) = action.assignments
    assert assignment.agent_id == "collector"
    assert assignment.tool == "billing.remind"
    assert assignment.title == "Billing assistant for Dana W."
    assert assignment.args == {"patient": "Dana Whitfield"}


async def test_a_request_that_fits_another_agent_goes_to_that_one() -> None:
    action = await respond("book Evan an appointment for Tuesday")
    assert isinstance(action, Delegate)
    assert action.assignments[0].agent_id == "scheduler"


@pytest.mark.parametrize(
    "text",
    [
        "don't send Dana a payment reminder",
        "hold off on the reminder for Dana until Friday",
        "call Bob",  # no phone tool here: nobody can, and the brain says so
    ],
)
async def test_negations_holds_and_unknown_work_start_nothing(text: str) -> None:
    action = await respond(text)
    assert isinstance(action, Reply)
    if text == "call Bob":
        assert action.text == "None of our agents can do calls, I'm afraid."


async def test_the_fallback_offers_the_teams_own_examples() -> None:
    action = await respond("the weather is nice")
    assert isinstance(action, Reply)
    assert "“send Dana a payment reminder”" in action.text


def test_a_lexicon_from_plain_data_reads_like_the_demos() -> None:
    lexicon = Lexicon.from_mapping(
        {
            "medicines": ["Ozempic"],
            "brands": ["ozempic"],
            "kinds": [
                {
                    "shape": "prior_auth",
                    "tool": "payer.prior_auth",
                    "label": "prior auth",
                    "plural": "prior auths",
                    "nouns": ["prior auth", "PA"],
                    "aliases": ["insurer"],
                }
            ],
            "groups": [
                {"name": "onboarding", "flag": "onboarding_complete", "phrases": ["onboarding"]}
            ],
        }
    )
    assert lexicon.kind("prior_auth") is not None
    assert lexicon.kind("prior_auth").nouns == ("prior auth", "pa")  # type: ignore[union-attr]
    assert lexicon.medicines == frozenset({"ozempic"})
    assert lexicon.kind("call") is None
    with pytest.raises(ValueError, match="unknown shape"):
        Lexicon.from_mapping({"kinds": [{"shape": "fax", "tool": "x", "label": "x"}]})
    with pytest.raises(ValueError, match="'nouns' is required"):
        Lexicon.from_mapping(
            {"kinds": [{"shape": "call", "tool": "t", "label": "call", "plural": "calls"}]}
        )


def _workspace(patients: list[Patient]) -> Workspace:
    return Workspace.build(DEMO_LEXICON, patients, TEAM)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("hanna", "hana"),
        ("alcie", "alice"),
        ("dnaa", "dana"),
        ("ozempik", "ozempic"),
        ("onbording", "onboarding"),
        ("patint", "patient"),
        ("evry", "every"),
        # Ordinary words stay what they are, however close to a name.
        ("even", "even"),
        ("data", "data"),
        ("hand", "hand"),
        ("alive", "alive"),
        ("cell", "cell"),
    ],
)
def test_typos_are_corrected_towards_the_workspaces_words_only(typed: str, meant: str) -> None:
    assert _workspace(demo_patients()).correct(typed) == meant


def test_an_empty_lexicon_knows_no_kinds_of_work() -> None:
    workspace = Workspace.build(EMPTY_LEXICON, demo_patients(), TEAM)
    assert workspace.lexicon.kinds == ()
    assert workspace.correct("hanna") == "hana"

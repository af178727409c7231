"""The rule brain: what it makes of ordinary wording, how its sub-agents work, and
what the person hears — checked without a runtime, against the real demo tools."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.brains import (
    Action,
    Assignment,
    CallTool,
    Cancel,
    CheckStatus,
    Delegate,
    Finish,
    Instruct,
    Note,
    Outcome,
    Reply,
    StepRecord,
    TaskSummary,
    Turn,
    UseTool,
    Work,
)
from agents.brains.rule import RuleBrain
from agents.demo import (
    PHONE_CALL,
    PRIOR_AUTH,
    RECORDS_LOOKUP,
    CallOutcome,
    CallScript,
    Decision,
    PayerSimulator,
    TelephonySimulator,
    build_demo_tools,
    demo_agents,
    demo_patients,
)
from agents.memory import MemoryStore
from agents.models import AgentDefinition, Task, TaskState
from agents.tools import ToolBox, ToolContext

pytestmark = pytest.mark.anyio

AGENTS = tuple(demo_agents())
BY_ID = {agent.id: agent for agent in AGENTS}
FRONT_DESK = BY_ID["front-desk"]
NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

# What the front desk has started in this conversation, newest first.
TASKS = (
    TaskSummary("t-pa", "Prior auth: Ozempic", "Ozempic", "prior-auth", terminal=False),
    TaskSummary("t-alice", "Call Alice Moreno", "Alice", "outreach-caller", terminal=False),
    TaskSummary("t-bob", "Call Bob Tran", "Bob", "outreach-caller", terminal=True),
    TaskSummary("t-carol", "Call Carol Singh", "Carol", "outreach-caller", terminal=False),
)
ACTIVE = ("t-pa", "t-alice", "t-carol")


async def demo_directory() -> MemoryStore:
    store = MemoryStore()
    await store.save_patients(demo_patients())
    return store


async def respond(text: str, tasks: Sequence[TaskSummary] = TASKS) -> Action:
    brain = RuleBrain(await demo_directory())
    return await brain.respond(Turn(text, FRONT_DESK, AGENTS, tuple(tasks)))


def make_task(
    title: str,
    subject: str,
    agent_id: str,
    *,
    state: TaskState = TaskState.WORKING,
    result: str | None = None,
    progress: str | None = None,
    batch_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    task_id: str = "t-1",
) -> Task:
    return Task(
        id=task_id,
        workspace_id="demo",
        conversation_id="conv-1",
        chat_id=f"chat-{task_id}",
        title=title,
        agent=BY_ID[agent_id].author,
        state=state,
        depth=1,
        parent_id=None,
        owner_agent_id="front-desk",
        person_id="person-1",
        created_at=NOW,
        updated_at=NOW,
        progress=progress,
        result=result,
        batch_id=batch_id,
        subject=subject,
        params=dict(params or {}),
    )


def task_for(assignment: Assignment, number: int = 1, batch_id: str | None = None) -> Task:
    return make_task(
        assignment.title,
        assignment.subject,
        assignment.agent_id,
        batch_id=batch_id,
        task_id=f"t-{number}",
        params={
            "tool": assignment.tool,
            "args": dict(assignment.args),
            "instructions": assignment.instructions,
        },
    )


async def run_sub_agent(
    brain: RuleBrain,
    toolbox: ToolBox,
    task: Task,
    *,
    instructions: Mapping[int, str] | None = None,
    refuse_delegation: bool = False,
) -> tuple[Finish, list[StepRecord]]:
    """Drive a sub-agent the way the runtime does, minus the runtime: tools run inline."""
    agent = BY_ID[task.agent.id]
    history: list[StepRecord] = []
    received: list[str] = []
    refusal: str | None = None
    for number in range(20):
        new = [instructions[number]] if instructions and number in instructions else []
        received.extend(new)
        work = Work(agent, task, AGENTS, tuple(history), tuple(received), tuple(new), refusal)
        refusal = None
        step = await brain.step(work)
        if isinstance(step, Finish):
            return step, history
        if isinstance(step, Note):
            history.append(StepRecord(step))
        elif isinstance(step, CallTool):
            assert step.tool in agent.tools
            tool = toolbox.get(step.tool)
            assert tool is not None
            ctx = ToolContext("demo", task.id, lambda _text: None)
            history.append(StepRecord(step, result=await tool.run(ctx, step.args)))
        else:
            assert isinstance(step, Delegate)
            assert refuse_delegation, "unexpected delegation"
            history.append(StepRecord(step, error="depth_limit"))
            refusal = "depth_limit: delegation is capped at depth 3"
    raise AssertionError("the sub-agent never finished")


async def run_assignments(
    brain: RuleBrain, toolbox: ToolBox, assignments: Sequence[Assignment]
) -> list[Outcome]:
    outcomes = []
    for number, assignment in enumerate(assignments, start=1):
        task = task_for(assignment, number, batch_id="batch-1")
        finish, _ = await run_sub_agent(brain, toolbox, task)
        state = TaskState.FAILED if finish.failed else TaskState.COMPLETED
        outcomes.append(Outcome(replace(task, state=state, result=finish.result), finish.data))
    return outcomes


# -- outreach --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Reach every patient who hasn't completed onboarding",
        "call all the patients that haven't finished onboarding",
        "can you phone everyone who's not onboarded yet?",
        "Please reach out to the patients who still need to onboard.",
        "Could you contact everybody with incomplete onboarding?",
        "ring the patients who never finished their intake paperwork",
        "OK — CALL EVERYONE WHO HASN’T FINISHED ONBOARDING!!",
        "call everyone who hasn't finished onboarding and let me know how it goes",
    ],
)
async def test_outreach_to_the_onboarding_group_fans_out_one_call_per_patient(text: str) -> None:
    action = await respond(text, tasks=())
    assert isinstance(action, Delegate)
    assert action.rollup
    assert [a.agent_id for a in action.assignments] == ["outreach-caller"] * 3
    assert [a.subject for a in action.assignments] == ["Alice", "Bob", "Carol"]
    assert [a.args["patient_id"] for a in action.assignments] == ["pt-alice", "pt-bob", "pt-carol"]
    assert {a.tool for a in action.assignments} == {PHONE_CALL}
    assert action.text == (
        "I'll have our outreach team call Alice, Bob and Carol in the background — "
        "I'll let you know how it goes."
    )


@pytest.mark.parametrize(
    ("text", "patient_id"),
    [
        ("call Alice", "pt-alice"),
        ("Give Bob a ring please", "pt-bob"),
        ("could you phone Carol Singh?", "pt-carol"),
        ("please get in touch with Dana", "pt-dana"),
    ],
)
async def test_calling_one_patient_is_one_background_task(text: str, patient_id: str) -> None:
    action = await respond(text, tasks=())
    assert isinstance(action, Delegate)
    (assignment,) = action.assignments
    assert assignment.agent_id == "outreach-caller"
    assert assignment.args["patient_id"] == patient_id
    assert not action.rollup


async def test_calling_everyone_asks_which_patients_first() -> None:
    action = await respond("call everyone", tasks=())
    assert isinstance(action, Reply)
    assert "onboarding" in action.text


# -- prior authorization -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "patient_id"),
    [
        ("Can you start a prior authorization for Ozempic for Dana?", "pt-dana"),
        ("I need a prior auth on my Ozempic prescription", None),
        ("get PA for Ozempic", None),
        ("please submit a pre-authorization for ozempic", None),
        ("Could you kick off the prior auth for Dana's Ozempic?", "pt-dana"),
        ("we need insurance approval for Ozempic", None),
        ("Can we get Ozempic authorized for Hana?", "pt-hana"),
        ("I'm on Ozempic and my insurance needs approval", None),
    ],
)
async def test_a_prior_auth_is_delegated_to_the_specialist(
    text: str, patient_id: str | None
) -> None:
    action = await respond(text, tasks=())
    assert isinstance(action, Delegate)
    assert not action.rollup
    (assignment,) = action.assignments
    assert assignment.agent_id == "prior-auth"
    assert assignment.subject == "Ozempic"
    who = {"pt-dana": " for Dana W.", "pt-hana": " for Hana K.", None: ""}[patient_id]
    assert assignment.title == f"Prior auth: Ozempic{who}"
    assert assignment.tool == PRIOR_AUTH
    assert assignment.args["medication"] == "Ozempic"
    assert assignment.args.get("patient_id") == patient_id
    assert action.text.startswith("Let me start that in the background")


async def test_an_urgent_prior_auth_is_filed_as_urgent() -> None:
    action = await respond("urgent: prior auth for Humira for Farah", tasks=())
    assert isinstance(action, Delegate)
    assert action.assignments[0].args == {
        "medication": "Humira",
        "patient_id": "pt-farah",
        "urgent": True,
    }


async def test_a_prior_auth_without_a_medication_asks_which() -> None:
    action = await respond("start a prior auth for Dana", tasks=())
    assert action == Reply(
        "Which medication is Dana's prior authorization for — Ozempic, metformin or atorvastatin?"
    )
    assert await respond("start a prior auth", tasks=()) == Reply(
        "Which medication is the prior authorization for?"
    )


# -- records ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Look up the records for Dana, Evan, Farah, Gus and Hana and cross-reference them",
        "pull up five patients' charts and compare them",
        "Cross-reference Dana, Evan, Farah, Gus and Hana's charts",
        "compare the records of dana, evan, farah, gus, and hana",
    ],
)
async def test_several_records_fan_out_one_lookup_each_and_roll_up(text: str) -> None:
    action = await respond(text, tasks=())
    assert isinstance(action, Delegate)
    assert action.rollup
    assert [a.agent_id for a in action.assignments] == ["records-clerk"] * 5
    assert [a.args["patient_id"] for a in action.assignments] == [
        "pt-dana",
        "pt-evan",
        "pt-farah",
        "pt-gus",
        "pt-hana",
    ]
    assert {a.tool for a in action.assignments} == {RECORDS_LOOKUP}
    assert "cross-referenced" in action.text


@pytest.mark.parametrize(
    ("text", "patient_id", "fields"),
    [
        ("what's Dana's date of birth?", "pt-dana", ["date_of_birth"]),
        ("look up Evan's allergies", "pt-evan", ["allergies"]),
        ("What is Evan's phone number?", "pt-evan", ["phone"]),
        ("who's Gus's doctor?", "pt-gus", ["provider"]),
        ("what meds is Hana taking", "pt-hana", ["medications"]),
        (
            "when was Farah born and what is she allergic to",
            "pt-farah",
            ["date_of_birth", "allergies"],
        ),
        ("pull up Farah's chart", "pt-farah", []),
        ("check on Dana's allergies", "pt-dana", ["allergies"]),
    ],
)
async def test_a_quick_lookup_uses_the_records_tool_inline(
    text: str, patient_id: str, fields: list[str]
) -> None:
    action = await respond(text, tasks=())
    assert isinstance(action, UseTool)
    assert action.tool == RECORDS_LOOKUP
    assert action.args == {"patient_id": patient_id, "fields": fields}


async def test_a_lookup_without_a_patient_asks_whose() -> None:
    action = await respond("can you look up a record for me", tasks=())
    assert action == Reply("Whose records should I look up?")


# -- status, instructions, cancellation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What's happening with the Ozempic request?", ("t-pa",)),
        ("any news on the prior auth?", ("t-pa",)),
        ("how are the calls going?", ("t-alice", "t-bob", "t-carol")),
        ("status?", ACTIVE),
        ("Any updates?", ACTIVE),
        ("Did Alice call back?", ("t-alice",)),
        ("is the prior auth done yet?", ("t-pa",)),
        ("how's Bob's call?", ("t-bob",)),
        ("Where do we stand on the ozempic PA", ("t-pa",)),
        ("can you check on the calls", ("t-alice", "t-bob", "t-carol")),
    ],
)
async def test_status_questions_check_the_matching_tasks(
    text: str, expected: tuple[str, ...]
) -> None:
    assert await respond(text) == CheckStatus(expected)


async def test_status_for_something_never_started_says_so() -> None:
    action = await respond("What's happening with the Humira request?")
    assert isinstance(action, Reply)
    assert "“Humira”" in action.text
    assert "don't have anything running" in action.text


async def test_status_with_nothing_started_says_nothing_is_running() -> None:
    for text in ("status?", "any news?"):
        assert await respond(text, tasks=()) == Reply(
            "There's no background work going on right now."
        )


async def test_status_when_everything_has_finished_reports_the_finished_tasks() -> None:
    done = tuple(replace(t, terminal=True) for t in TASKS)
    assert await respond("status?", tasks=done) == CheckStatus(tuple(t.id for t in TASKS))


@pytest.mark.parametrize(
    ("text", "task_id", "instruction"),
    [
        ("tell the Ozempic request to mark it urgent", "t-pa", "Mark it urgent."),
        (
            "for the Ozempic one, add that the patient tried metformin first",
            "t-pa",
            "Add that the patient tried metformin first.",
        ),
        ("Mark the Ozempic request as urgent", "t-pa", "Mark it urgent."),
        (
            "let the prior auth know that the pharmacy is on Main Street",
            "t-pa",
            "The pharmacy is on Main Street.",
        ),
        ("ask Alice's caller to mention the new portal", "t-alice", "Mention the new portal."),
        ("Ozempic request: please mark it urgent", "t-pa", "Please mark it urgent."),
        ("re the prior auth — she tried metformin first", "t-pa", "She tried metformin first."),
    ],
)
async def test_new_instructions_go_to_the_matching_task(
    text: str, task_id: str, instruction: str
) -> None:
    assert await respond(text) == Instruct(task_id, instruction)


async def test_an_unnamed_instruction_goes_to_the_only_running_task() -> None:
    action = await respond("add that the patient tried metformin first", tasks=TASKS[:1])
    assert action == Instruct("t-pa", "Add that the patient tried metformin first.")


async def test_an_unnamed_instruction_with_several_running_asks_which() -> None:
    action = await respond("add that the patient tried metformin first")
    assert isinstance(action, Reply)
    assert action.text.startswith("Which one")


async def test_instructions_for_a_finished_task_are_not_sent() -> None:
    action = await respond("tell Bob's call to leave a callback number")
    assert isinstance(action, Reply)
    assert "already finished" in action.text


async def test_instructions_for_something_never_started_say_so() -> None:
    action = await respond("tell the Humira request to mark it urgent")
    assert isinstance(action, Reply)
    assert "“Humira”" in action.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cancel the background work on Ozempic", ("t-pa",)),
        ("stop the calls", ("t-alice", "t-carol")),
        ("never mind the Ozempic request", ("t-pa",)),
        ("Please abort the prior auth.", ("t-pa",)),
        ("forget about the call to Alice", ("t-alice",)),
        ("stop everything", ACTIVE),
        ("tell the calls to stop", ("t-alice", "t-carol")),
        ("Call off the calls, please", ("t-alice", "t-carol")),
    ],
)
async def test_cancellation_cancels_the_matching_running_tasks(
    text: str, expected: tuple[str, ...]
) -> None:
    assert await respond(text) == Cancel(expected)


@pytest.mark.parametrize(
    "text", ["don't stop the calls", "please do not cancel the Ozempic request, let it finish"]
)
async def test_asking_not_to_cancel_cancels_nothing(text: str) -> None:
    assert await respond(text) == Reply("Okay — I'll let it keep going.")


async def test_a_question_about_a_task_is_not_an_instruction() -> None:
    assert await respond("the Ozempic one: any news?") == CheckStatus(("t-pa",))


async def test_cancel_it_with_one_task_running_cancels_that_one() -> None:
    assert await respond("cancel it", tasks=TASKS[:1]) == Cancel(("t-pa",))


async def test_cancel_it_with_several_running_asks_which() -> None:
    action = await respond("cancel it")
    assert isinstance(action, Reply)
    assert action.text == (
        "Which one should I cancel — the Ozempic prior auth, Alice's call or Carol's call?"
    )


@pytest.mark.parametrize("tasks", [TASKS, ()])
async def test_cancelling_something_never_started_says_so(tasks: Sequence[TaskSummary]) -> None:
    action = await respond("cancel the Humira request", tasks=tasks)
    assert isinstance(action, Reply)
    assert "nothing to cancel" in action.text


# -- what must not start anything --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "hi",
        "Hello there!",
        "what can you do?",
        "What are your opening hours?",
        "thanks so much",
        "what is a prior authorization?",
        "how long does a prior auth usually take?",
        "Is a prior auth needed for metformin?",
        "Is Ozempic covered by my insurance?",
        "how would I get a prior auth?",
        "I got a call from the pharmacy",
        "my doctor told me to stop taking metformin",
        "Can I call you back later?",
        "tell me a joke",
        "Did Alice call back?",
        "how are you?",
        "I want to cancel my appointment",
        "",
        "?!",
    ],
)
async def test_ordinary_conversation_never_starts_or_stops_background_work(text: str) -> None:
    assert isinstance(await respond(text, tasks=()), Reply)


async def test_small_talk_answers() -> None:
    hours = await respond("when are you open?", tasks=())
    assert isinstance(hours, Reply)
    assert "Monday to Friday" in hours.text
    capabilities = await respond("What can you do?", tasks=())
    assert isinstance(capabilities, Reply)
    for name in ("Outreach caller", "Prior-auth specialist", "Records clerk"):
        assert name in capabilities.text
    fallback = await respond("the weather is nice", tasks=())
    assert isinstance(fallback, Reply)
    assert fallback.text.startswith("Sorry, I didn't catch that.")


async def test_without_a_capable_agent_it_says_so_instead_of_delegating() -> None:
    brain = RuleBrain(await demo_directory())
    alone = (FRONT_DESK,)
    for text in ("call Alice", "get PA for Ozempic", "compare Dana and Evan's records"):
        action = await brain.respond(Turn(text, FRONT_DESK, alone, ()))
        assert isinstance(action, Reply)
        assert "agents can" in action.text


# -- sub-agents ---------------------------------------------------------------------------------


async def test_a_caller_calls_then_finishes_with_the_outcome() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    task = make_task(
        "Call Alice Moreno",
        "Alice",
        "outreach-caller",
        params={"tool": PHONE_CALL, "args": {"patient_id": "pt-alice"}, "instructions": "Call."},
    )
    finish, history = await run_sub_agent(brain, build_demo_tools(store, latency_scale=0), task)
    assert [type(r.step) for r in history] == [CallTool]
    assert finish.result == "Called Alice — she's getting back to us today."
    assert finish.data["outcome"] == "call_back"
    assert not finish.failed


async def test_instructions_before_the_call_are_acknowledged_and_taken_on_the_call() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    task = make_task(
        "Call Bob Tran",
        "Bob",
        "outreach-caller",
        params={"tool": PHONE_CALL, "args": {"patient_id": "pt-bob"}, "instructions": "Call."},
    )
    finish, history = await run_sub_agent(
        brain,
        build_demo_tools(store, latency_scale=0),
        task,
        instructions={0: "mention the new patient portal"},
    )
    note, call = history[0].step, history[1].step
    assert note == Note("Noted: mention the new patient portal. I'll bring that up on the call.")
    assert isinstance(call, CallTool)
    assert call.args["notes"] == ["Mention the new patient portal."]
    assert "Mention the new patient portal." in finish.result
    assert finish.data["instructions"] == ["mention the new patient portal"]


async def test_an_urgent_instruction_before_submission_files_the_request_as_urgent() -> None:
    store = await demo_directory()
    payer = PayerSimulator()
    brain = RuleBrain(store)
    task = make_task(
        "Prior auth: Ozempic",
        "Ozempic",
        "prior-auth",
        params={"tool": PRIOR_AUTH, "args": {"medication": "Ozempic"}, "instructions": "PA."},
    )
    finish, history = await run_sub_agent(
        brain,
        build_demo_tools(store, latency_scale=0, payer=payer),
        task,
        instructions={0: "Mark it urgent"},
    )
    assert history[0].step == Note("Noted: mark it urgent. I'll include that in the request.")
    (request,) = payer.submitted
    assert request.urgent
    assert finish.result.startswith("Approved — the payer approved Ozempic")
    assert "filed as urgent" in finish.result
    assert finish.data["decision"] == "approved"


async def test_instructions_after_the_tool_are_noted_in_the_result() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    task = make_task(
        "Prior auth: Ozempic",
        "Ozempic",
        "prior-auth",
        params={"tool": PRIOR_AUTH, "args": {"medication": "Ozempic"}, "instructions": "PA."},
    )
    finish, history = await run_sub_agent(
        brain,
        build_demo_tools(store, latency_scale=0),
        task,
        instructions={1: "add that the patient tried metformin first"},
    )
    assert history[1].step == Note(
        "Noted: add that the patient tried metformin first. I'll include that in my report."
    )
    assert finish.result.endswith("Also noted: add that the patient tried metformin first.")


async def test_a_tool_error_in_the_history_fails_the_task() -> None:
    brain = RuleBrain(await demo_directory())
    step = CallTool(PHONE_CALL, {"patient_id": "pt-alice"})
    work = Work(
        BY_ID["outreach-caller"],
        make_task("Call Alice Moreno", "Alice", "outreach-caller", params={"tool": PHONE_CALL}),
        AGENTS,
        (StepRecord(step, error="Outreach caller has no tool named phone.call."),),
        (),
        (),
    )
    finish = await brain.step(work)
    assert isinstance(finish, Finish)
    assert finish.failed


async def test_work_without_a_tool_fails_honestly() -> None:
    brain = RuleBrain(await demo_directory())
    agent = AgentDefinition("demo", "helper", "Helper", "Helps.", "Help.", tools=("a", "b"))
    work = Work(agent, make_task("Something", "", "prior-auth"), AGENTS, (), (), ())
    finish = await brain.step(work)
    assert isinstance(finish, Finish)
    assert finish.failed


async def test_several_patients_in_one_task_fan_out_to_the_team() -> None:
    brain = RuleBrain(await demo_directory())
    task = make_task(
        "Records: Dana and Evan",
        "Dana",
        "records-clerk",
        params={"tool": RECORDS_LOOKUP, "args": {"patient_ids": ["pt-dana", "pt-evan"]}},
    )
    step = await brain.step(Work(BY_ID["records-clerk"], task, AGENTS, (), (), ()))
    assert isinstance(step, Delegate)
    assert step.rollup
    assert [a.title for a in step.assignments] == [
        "Records: Dana Whitfield",
        "Records: Evan Okafor",
    ]
    assert [a.args for a in step.assignments] == [
        {"patient_id": "pt-dana"},
        {"patient_id": "pt-evan"},
    ]


async def test_refused_delegation_is_done_by_the_sub_agent_itself() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    task = make_task(
        "Records: Dana and Evan",
        "Dana",
        "records-clerk",
        params={"tool": RECORDS_LOOKUP, "args": {"patient_ids": ["pt-dana", "pt-evan"]}},
    )
    finish, history = await run_sub_agent(
        brain, build_demo_tools(store, latency_scale=0), task, refuse_delegation=True
    )
    calls = [r.step for r in history if isinstance(r.step, CallTool)]
    assert [c.args["patient_id"] for c in calls] == ["pt-dana", "pt-evan"]
    assert not finish.failed
    assert "cross-referenced the records for Dana and Evan" in finish.result
    assert "metformin — Dana and Evan" in finish.result


async def test_refused_delegation_without_the_tool_fails_saying_why() -> None:
    brain = RuleBrain(await demo_directory())
    task = make_task(
        "Calls",
        "Alice",
        "records-clerk",
        params={"tool": PHONE_CALL, "args": {"patient_ids": ["pt-alice", "pt-bob"]}},
    )
    delegate = await brain.step(Work(BY_ID["records-clerk"], task, AGENTS, (), (), ()))
    assert isinstance(delegate, Delegate)
    refused = (StepRecord(delegate, error="depth_limit"),)
    work = Work(BY_ID["records-clerk"], task, AGENTS, refused, (), (), refusal="depth_limit")
    finish = await brain.step(work)
    assert isinstance(finish, Finish)
    assert finish.failed
    assert "can't delegate further (depth limit)" in finish.result


# -- what the person hears -----------------------------------------------------------------------


async def test_the_outreach_roll_up_names_each_agent_and_what_it_learned() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    action = await brain.respond(
        Turn("Reach every patient who hasn't completed onboarding", FRONT_DESK, AGENTS, ())
    )
    assert isinstance(action, Delegate)
    toolbox = build_demo_tools(store, latency_scale=0, telephony=TelephonySimulator())
    outcomes = await run_assignments(brain, toolbox, action.assignments)
    assert brain.followup_text(outcomes, rollup=True) == (
        "Agent 1 called Alice — she's getting back to us today. "
        "Agent 2 left a voicemail for Bob. "
        "Agent 3 learned that Carol has moved and no longer needs services."
    )


async def test_a_roll_up_reports_failed_and_cancelled_calls_too() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    telephony = TelephonySimulator({"pt-dana": CallScript(CallOutcome.OUT_OF_SERVICE)})
    toolbox = build_demo_tools(store, latency_scale=0, telephony=telephony)
    action = await brain.respond(Turn("call Alice and Dana", FRONT_DESK, AGENTS, ()))
    assert isinstance(action, Delegate)
    alice = task_for(action.assignments[0], 1, "b")
    finish, _ = await run_sub_agent(brain, toolbox, alice)
    dana = replace(
        task_for(action.assignments[1], 2, "b"),
        state=TaskState.FAILED,
        result="Outreach caller could not finish: The number on file is out of service.",
    )
    bob = make_task(
        "Call Bob Tran", "Bob", "outreach-caller", state=TaskState.CANCELLED, task_id="t-3"
    )
    text = brain.followup_text(
        [
            Outcome(replace(alice, state=TaskState.COMPLETED, result=finish.result), finish.data),
            Outcome(dana),
            Outcome(bob),
        ],
        rollup=True,
    )
    assert text == (
        "Agent 1 called Alice — she's getting back to us today. "
        "Agent 2 couldn't finish the call to Dana: the number on file is out of service. "
        "Agent 3's call to Bob was cancelled."
    )


async def test_the_records_roll_up_is_one_cross_referenced_answer() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    action = await brain.respond(
        Turn(
            "Look up the records for Dana, Evan, Farah, Gus and Hana and cross-reference them",
            FRONT_DESK,
            AGENTS,
            (),
        )
    )
    assert isinstance(action, Delegate)
    outcomes = await run_assignments(
        brain, build_demo_tools(store, latency_scale=0), action.assignments
    )
    answer = brain.followup_text(outcomes, rollup=True)
    assert answer.startswith(
        "I looked up and cross-referenced the records for Dana, Evan, Farah, Gus and Hana."
    )
    assert "Shared medications: metformin — Dana, Evan and Hana;" in answer
    assert "semaglutide (Ozempic) — Dana and Hana" in answer
    assert "Shared allergies: penicillin — Dana, Farah and Gus; sulfa drugs — Evan and Hana." in (
        answer
    )
    assert "Dr. Priya Natarajan sees Dana, Evan and Hana" in answer
    assert "Dr. Marcus Lee sees Farah and Gus" in answer
    assert "Gus takes warfarin with aspirin (higher bleeding risk)" in answer
    assert "Farah takes lisinopril with spironolactone (risk of high potassium)" in answer
    assert "Hana takes semaglutide (Ozempic) with insulin glargine" in answer


async def test_a_records_roll_up_answers_the_fields_asked_and_names_failures() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    action = await brain.respond(
        Turn("compare Dana, Evan and Gus's allergies", FRONT_DESK, AGENTS, ())
    )
    assert isinstance(action, Delegate)
    outcomes = await run_assignments(
        brain, build_demo_tools(store, latency_scale=0), action.assignments[:2]
    )
    gus = replace(
        task_for(action.assignments[2], 3, "batch-1"),
        state=TaskState.FAILED,
        result="Records clerk could not finish: No patient matches that name or id.",
    )
    answer = brain.followup_text([*outcomes, Outcome(gus)], rollup=True)
    assert "Allergies — Dana: penicillin; Evan: sulfa drugs." in answer
    assert "I couldn't read Gus's record: no patient matches that name or id." in answer


async def test_the_prior_auth_follow_up_weaves_in_the_decision() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    action = await brain.respond(
        Turn("Can you start a prior authorization for Ozempic for Dana?", FRONT_DESK, AGENTS, ())
    )
    assert isinstance(action, Delegate)
    (outcome,) = await run_assignments(
        brain, build_demo_tools(store, latency_scale=0), action.assignments
    )
    assert brain.followup_text([outcome], rollup=False) == (
        "Quick update on the prior auth you asked about earlier — approved. "
        "Bluebridge Health approved Ozempic (reference PA-1001)."
    )


async def test_a_denied_prior_auth_follow_up_offers_next_steps() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    payer = PayerSimulator(default=Decision.DENIED)
    toolbox = build_demo_tools(store, latency_scale=0, payer=payer)
    action = await brain.respond(Turn("get PA for Ozempic", FRONT_DESK, AGENTS, ()))
    assert isinstance(action, Delegate)
    (outcome,) = await run_assignments(brain, toolbox, action.assignments)
    text = brain.followup_text([outcome], rollup=False)
    assert text.startswith("Quick update on the prior auth you asked about earlier — denied.")
    assert "appeal" in text


def test_failed_cancelled_and_interrupted_follow_ups_say_so() -> None:
    brain = RuleBrain(MemoryStore())
    failed = make_task(
        "Prior auth: Ozempic",
        "Ozempic",
        "prior-auth",
        state=TaskState.FAILED,
        result="Prior-auth specialist could not finish: The payer's portal is down.",
    )
    assert brain.followup_text([Outcome(failed)], rollup=False) == (
        "Sorry — the prior auth for Ozempic couldn't be completed: the payer's portal is down."
    )
    cancelled = replace(
        failed,
        state=TaskState.CANCELLED,
        result="Cancelled: Withdrew the Ozempic prior authorization request (PA-1001).",
    )
    assert brain.followup_text([Outcome(cancelled)], rollup=False) == (
        "The prior auth for Ozempic was stopped before it finished, as you asked. "
        "Withdrew the Ozempic prior authorization request (PA-1001)."
    )
    interrupted = replace(failed, state=TaskState.INTERRUPTED, result=None)
    assert "interrupted" in brain.followup_text([Outcome(interrupted)], rollup=False)


def test_status_text_reports_live_state() -> None:
    brain = RuleBrain(MemoryStore())
    working = make_task(
        "Prior auth: Ozempic",
        "Ozempic",
        "prior-auth",
        progress="Still waiting on the pharmacy — I'll let you know.",
    )
    assert brain.status_text([working]) == (
        "The prior auth for Ozempic: still waiting on the pharmacy — I'll let you know."
    )
    done = replace(working, state=TaskState.COMPLETED, result="Approved — the payer approved it.")
    assert brain.status_text([done]) == (
        "The prior auth for Ozempic is done: approved — the payer approved it."
    )
    call = make_task("Call Bob Tran", "Bob", "outreach-caller", state=TaskState.SUBMITTED)
    assert brain.status_text([done, call]) == (
        "The prior auth for Ozempic is done: approved — the payer approved it. "
        "The call to Bob is about to start."
    )
    assert brain.status_text([]) == "There's no background work going on right now."


def test_cancel_text_says_what_was_stopped_and_what_had_already_finished() -> None:
    brain = RuleBrain(MemoryStore())
    calls = [
        make_task(f"Call {n}", n.split()[0], "outreach-caller", state=TaskState.CANCELLING)
        for n in ("Alice Moreno", "Bob Tran", "Carol Singh")
    ]
    assert brain.cancel_text(calls) == "Okay — I'm stopping the calls to Alice, Bob and Carol."
    stopped = make_task(
        "Prior auth: Ozempic",
        "Ozempic",
        "prior-auth",
        state=TaskState.CANCELLED,
        result="Cancelled: Withdrew the Ozempic prior authorization request (PA-1001).",
    )
    assert brain.cancel_text([stopped]) == (
        "Okay — I've stopped the prior auth for Ozempic. "
        "Withdrew the Ozempic prior authorization request (PA-1001)."
    )
    finished = replace(stopped, state=TaskState.COMPLETED, result="Approved.")
    assert brain.cancel_text([finished]) == (
        "The prior auth for Ozempic had already finished: approved."
    )
    assert brain.cancel_text([]) == "There was nothing running to cancel."


def test_replies_name_whose_work_it_is() -> None:
    brain = RuleBrain(MemoryStore())
    dana = make_task("Prior auth: Ozempic for Dana W.", "Ozempic", "prior-auth", task_id="t-1")
    hana = make_task("Prior auth: Ozempic for Hana K.", "Ozempic", "prior-auth", task_id="t-2")
    bob = make_task("Call Bob T.", "Bob", "outreach-caller", task_id="t-3")
    stopping = [replace(t, state=TaskState.CANCELLING) for t in (dana, hana)]
    assert brain.cancel_text(stopping) == (
        "Okay — I'm stopping the Ozempic prior auths for Dana and Hana."
    )
    assert brain.cancel_text([stopping[0]]) == (
        "Okay — I'm stopping the Ozempic prior auth for Dana."
    )
    mounjaro = replace(hana, title="Prior auth: Mounjaro for Hana K.", state=TaskState.CANCELLING)
    assert brain.cancel_text([stopping[0], mounjaro]) == (
        "Okay — I'm stopping the prior auths for Dana (Ozempic) and Hana (Mounjaro)."
    )
    assert brain.instruct_text(bob) == "Got it — I've passed that on to the call to Bob."


def test_instruct_text_confirms_the_hand_off() -> None:
    brain = RuleBrain(MemoryStore())
    task = make_task("Prior auth: Ozempic", "Ozempic", "prior-auth")
    assert (
        brain.instruct_text(task) == "Got it — I've passed that on to the prior auth for Ozempic."
    )
    done = replace(task, state=TaskState.COMPLETED)
    assert "already finished" in brain.instruct_text(done)


def test_progress_is_told_for_a_lone_task_and_left_to_the_roll_up_for_a_batch() -> None:
    brain = RuleBrain(MemoryStore())
    lone = make_task("Prior auth: Ozempic", "Ozempic", "prior-auth")
    line = "Still waiting on the pharmacy — I'll let you know."
    assert brain.progress_text(lone, line) == line
    member = make_task("Call Alice Moreno", "Alice", "outreach-caller", batch_id="batch-1")
    assert brain.progress_text(member, "Ringing Alice…") == ""


async def test_a_quick_lookup_answers_exactly_what_was_asked() -> None:
    store = await demo_directory()
    brain = RuleBrain(store)
    toolbox = build_demo_tools(store, latency_scale=0)
    for text, answer in [
        ("what's Dana's date of birth?", "Dana Whitfield's date of birth is March 14, 1968."),
        ("look up Evan's allergies", "Evan Okafor is allergic to sulfa drugs."),
        ("who is Gus's doctor", "Gus Lindqvist's provider is Dr. Marcus Lee."),
        (
            "when was Farah born and what is she allergic to",
            "Farah Haddad's date of birth is April 9, 1977. "
            "Farah is allergic to penicillin and shellfish.",
        ),
    ]:
        action = await brain.respond(Turn(text, FRONT_DESK, AGENTS, ()))
        assert isinstance(action, UseTool)
        lookup = toolbox.get(action.tool)
        assert lookup is not None
        result = await lookup.run(ToolContext("demo", None, lambda _text: None), action.args)
        assert brain.tool_text(action.tool, result) == answer

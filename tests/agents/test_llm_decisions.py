"""What the LLM brain offers a model and how it reads the answers back (no model needed)."""

from __future__ import annotations

import json

import httpx
import pytest

from agents.brains import (
    CallerStatus,
    CallTool,
    Cancel,
    CheckStatus,
    Delegate,
    Finish,
    Instruct,
    Reply,
    StepRecord,
    TaskSummary,
    ToolInfo,
    Turn,
    VerifyCaller,
)
from agents.brains.llm import LLMBrain, _json_action, _json_step
from agents.brains.llm.client import ChatClient, ChatModel
from agents.brains.llm.decisions import (
    Malformed,
    TextField,
    caller_schema,
    caller_tools,
    primary_examples,
    primary_schema,
    sub_agent_schema,
)
from agents.memory import MemoryStore
from agents.models import AgentDefinition, TaskState
from agents.tools import ToolResult

HELPER = AgentDefinition(
    "nw", "benefits", "Benefits checker", "Checks coverage.", "", examples=("is Tom covered",)
)
DONE = TaskSummary("t1", "Coverage for Tom B.", "Tom", "benefits", True, TaskState.COMPLETED)
RUNNING = TaskSummary("t2", "Coverage for Ann C.", "Ann", "benefits", False, TaskState.WORKING)


def actions(schema: dict) -> list[str]:
    inner = schema["json_schema"]["schema"]
    choices = inner.get("anyOf", [inner])
    return [c["properties"]["action"]["const"] for c in choices]


def test_the_schema_offers_only_the_decisions_the_turn_allows() -> None:
    assert actions(primary_schema([], [])) == ["reply"]
    assert actions(primary_schema([HELPER], [])) == ["reply", "delegate"]
    assert actions(primary_schema([HELPER], [DONE])) == ["reply", "delegate", "check_status"]
    assert actions(primary_schema([HELPER], [RUNNING, DONE])) == [
        "reply",
        "delegate",
        "check_status",
        "send_instructions",
        "cancel",
    ]
    choices = primary_schema([HELPER], [RUNNING, DONE])["json_schema"]["schema"]["anyOf"]
    cancel = next(c for c in choices if c["properties"]["action"]["const"] == "cancel")
    assert cancel["properties"]["task_id"] == {"enum": ["t2"]}  # only running tasks


def test_every_worked_example_fits_the_schema_of_its_turn() -> None:
    for tasks in ([], [DONE], [RUNNING, DONE]):
        allowed = set(actions(primary_schema([HELPER], tasks)))
        shots = primary_examples([HELPER], tasks)
        answers = [json.loads(m["content"]) for m in shots if m["role"] == "assistant"]
        assert {a["action"] for a in answers} == allowed
        for answer in answers:
            if "task_id" in answer:
                assert answer["task_id"] in {t.id for t in tasks}


def test_a_sub_agent_may_not_finish_before_a_tool_answered() -> None:
    tool = ToolInfo("eligibility.check", "Ask the insurer.", {}, 3)
    assert actions(sub_agent_schema([tool], may_finish=False)) == ["eligibility.check"]
    assert actions(sub_agent_schema([tool])) == ["eligibility.check", "finish"]
    assert actions(sub_agent_schema([], may_finish=False)) == ["finish"]
    # A tool that declares no parameters takes none (nothing for the model to invent).
    choice = sub_agent_schema([tool])["json_schema"]["schema"]["anyOf"][0]
    assert choice["properties"]["arguments"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_handles_map_back_to_task_ids_and_unknown_ones_go_on_as_they_are() -> None:
    handles = {"t1": "task_real"}
    assert _json_action('{"action": "check_status", "task_id": "t1"}', handles) == CheckStatus(
        ("task_real",)
    )
    assert _json_action('{"action": "cancel", "task_id": "t9"}', handles) == Cancel(("t9",))
    assert _json_action(
        '{"action": "send_instructions", "task_id": "t1", "text": "hurry"}', handles
    ) == Instruct("task_real", "hurry")
    assert _json_action('{"action": "reply", "text": "Hi"}', handles) == Reply("Hi")
    delegate = _json_action(
        '{"action": "delegate", "agent_id": "benefits", "title": "Tom", "text": ""}', handles
    )
    assert isinstance(delegate, Delegate)
    assert delegate.assignments[0].agent_id == "benefits"


@pytest.mark.parametrize(
    "raw", ["", "[1]", '{"action": "dance"}', '{"action": "reply", "text": ""}', "{oops"]
)
def test_an_unusable_answer_is_malformed(raw: str) -> None:
    with pytest.raises(Malformed):
        _json_action(raw, {})


def test_a_small_models_result_is_what_the_tool_answered() -> None:
    asked = StepRecord(CallTool("eligibility.check", {}), result=ToolResult("Tom is covered."))
    assert _json_step('{"action": "finish"}', set(), [asked]) == Finish("Tom is covered.")
    failed = StepRecord(CallTool("eligibility.check", {}), error="the insurer is down")
    step = _json_step('{"action": "finish"}', set(), [failed])
    assert step == Finish("I couldn't finish: the insurer is down", failed=True)
    with pytest.raises(Malformed):
        _json_step('{"action": "finish"}', set(), [])  # nothing answered yet
    with pytest.raises(Malformed):
        _json_step('{"action": "records.delete", "arguments": {}}', {"records.get"}, [])


def test_the_text_field_streams_as_written_with_escapes_cut_between_pieces() -> None:
    answer = '{"action": "reply", "text": "Caf\\u00e9 \\"Bo\\" \\\\ line\\nnext"}'
    field = TextField()
    shown = "".join(field.feed(answer[i : i + 3]) for i in range(0, len(answer), 3))
    assert shown == 'Café "Bo" \\ line\nnext'
    assert field.closed
    assert json.loads(answer)["text"] == shown
    other = TextField()
    assert other.feed('{"action": "check_status", "task_id": "t1"}') == ""


def test_a_tools_arrays_and_strings_are_bounded_for_a_small_model() -> None:
    tool = ToolInfo(
        "records.lookup",
        "Look up a chart.",
        {
            "type": "object",
            "properties": {
                "patient": {"type": "string"},
                "fields": {"type": "array", "items": {"enum": ["mrn", "phone"]}},
                "notes": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            },
        },
        1,
    )
    choice = sub_agent_schema([tool])["json_schema"]["schema"]["anyOf"][0]
    properties = choice["properties"]["arguments"]["properties"]
    assert properties["patient"]["maxLength"] == 200
    assert properties["fields"]["maxItems"] == 8
    assert properties["fields"]["uniqueItems"] is True
    assert properties["notes"]["maxItems"] == 3  # the tool's own bound stays
    assert properties["notes"]["items"]["maxLength"] == 200
    assert tool.parameters["properties"]["patient"] == {"type": "string"}  # not changed


# -- a phone caller not yet verified ----------------------------------------------------


def test_an_unverified_caller_s_turn_offers_only_a_reply_or_verification() -> None:
    assert actions(caller_schema()) == ["reply", "verify_caller"]
    assert [t["function"]["name"] for t in caller_tools()] == ["verify_caller"]
    answer = json.dumps({"action": "verify_caller", "name": "Ann C", "date_of_birth": "1970-01-02"})
    assert _json_action(answer, {}) == VerifyCaller("Ann C", "1970-01-02")


def _caller_turn(text: str) -> Turn:
    primary = AgentDefinition("front", "front", "Front desk", "", "", ("delegate",), "llm")
    return Turn(
        text,
        primary,
        (primary, HELPER),
        (RUNNING,),
        caller=CallerStatus(verified=False, tries_left=3),
        patient_scope="",
    )


def _brain(requests: list[dict[str, object]], answer: dict[str, object]) -> LLMBrain:
    def reply(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        chunk = {"choices": [{"delta": answer, "finish_reason": "stop"}]}
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    client = ChatClient(
        ChatModel("http://model.test/v1", "m"), transport=httpx.MockTransport(reply)
    )
    return LLMBrain(client, MemoryStore())


@pytest.mark.anyio
async def test_a_model_facing_an_unverified_caller_sees_no_team_task_or_tool_but_verification() -> (
    None
):
    requests: list[dict[str, object]] = []
    call = {"index": 0, "id": "c1", "function": {"name": "verify_caller", "arguments": ""}}
    call["function"]["arguments"] = json.dumps({"name": "Ann C", "date_of_birth": "2 Jan 1970"})  # type: ignore[index]
    brain = _brain(requests, {"tool_calls": [call]})
    action = await brain.respond(_caller_turn("It's Ann, you know me"))
    assert action == VerifyCaller("Ann C", "2 Jan 1970")
    (sent,) = requests
    assert [t["function"]["name"] for t in sent["tools"]] == ["verify_caller"]  # type: ignore[index, union-attr]
    prompt = json.dumps(sent["messages"])
    assert "not been verified" in prompt
    assert "Coverage for Ann C." not in prompt  # the running task
    assert "benefits" not in prompt  # the team


@pytest.mark.anyio
async def test_a_name_and_date_of_birth_said_plainly_need_no_model() -> None:
    requests: list[dict[str, object]] = []
    brain = _brain(requests, {"content": "unused"})
    action = await brain.respond(_caller_turn("This is Ann Carter, born January 2nd 1970"))
    assert action == VerifyCaller("ann carter", "1970-01-02")
    assert requests == []

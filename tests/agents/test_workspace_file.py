"""The workspace file: what a good file yields, and where a bad one is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.demo.file import DEMO_FILE, demo_spec
from agents.demo.patients import demo_patients
from agents.exceptions import WorkspaceFileError
from agents.workspace_file import WorkspaceSpec, parse_workspace, spec_from_json

GOOD = """
[workspace]
id = "acme"
name = "Acme Clinic"

[brains.local]
base_url = "http://127.0.0.1:8080/v1"
model = "smollm2"
api_key_env = "ACME_LLM_KEY"

[[agents]]
id = "desk"
name = "Desk"
primary = true
description = "Talks to people."
brain = "local"

[[agents]]
id = "checker"
description = "Checks coverage."
tools = ["coverage.check", "docs.*"]
examples = ["check coverage for Ann"]

[[tools]]
name = "coverage.check"
description = "Ask the insurer."
expected_latency = 4
url = "https://insurer.example/v1/check"
method = "post"
headers_from_env = { Authorization = "ACME_INSURER_AUTH" }

[tools.parameters]
type = "object"
required = ["patient"]
properties.patient = { type = "string" }

[tools.cleanup]
url = "https://insurer.example/v1/release"

[[mcp_servers]]
name = "docs"
url = "http://127.0.0.1:9000/mcp"
latency = { search = 12 }
"""


def parse(text: str) -> WorkspaceSpec:
    return parse_workspace(text, source="acme.toml")


def refusal(text: str) -> WorkspaceFileError:
    with pytest.raises(WorkspaceFileError) as caught:
        parse(text)
    return caught.value


def test_a_good_file_yields_its_agents_tools_servers_and_brains() -> None:
    spec = parse(GOOD)
    assert (spec.id, spec.name, spec.primary.id) == ("acme", "Acme Clinic", "desk")
    checker = spec.agent_definitions()[1]
    assert (checker.name, checker.tools, checker.examples) == (
        "checker",
        ("coverage.check", "docs.*"),
        ("check coverage for Ann",),
    )
    (tool,) = spec.tools
    assert tool.endpoint is not None
    assert tool.endpoint.method == "POST"
    assert tool.endpoint.headers_from_env == {"Authorization": "ACME_INSURER_AUTH"}
    assert tool.cleanup is not None
    assert tool.parameters == {
        "type": "object",
        "required": ["patient"],
        "properties": {"patient": {"type": "string"}},
    }
    assert spec.mcp_servers[0].latency == {"search": 12.0}
    assert spec.brains[0].api_key_env == "ACME_LLM_KEY"
    assert spec.directory == "store"  # no [patients]: the stored directory is kept


def test_a_spec_survives_storage_and_its_digest_is_its_content() -> None:
    spec = parse(GOOD)
    assert spec_from_json(spec.to_json()) == spec
    assert parse(GOOD + "\n# a comment changes nothing\n").digest == spec.digest
    assert parse(GOOD.replace("Checks coverage.", "Checks cover.")).digest != spec.digest


def test_the_demo_is_a_workspace_file_like_any_other() -> None:
    assert DEMO_FILE.name == "workspace.toml"
    spec = demo_spec()
    assert spec.primary.id == "front-desk"
    assert {t.name: t.kind for t in spec.tools} == {
        "phone.call": "builtin",
        "payer.prior_auth": "builtin",
        "records.lookup": "builtin",
    }
    assert spec.patient_records() == demo_patients()


@pytest.mark.parametrize(
    ("change", "line_of", "key", "problem"),
    [
        (('name = "Desk"', 'nmae = "Desk"'), "nmae", "agents[0].nmae", "unknown key"),
        (('tools = ["coverage.check"', 'tools = ["coverage.chek"'), "coverage.chek",
         "agents[1].tools[0]", "no tool 'coverage.chek'"),
        (('brain = "local"', 'brain = "remote"'), "remote", "agents[0].brain", "no brain"),
        (("expected_latency = 4\n", ""), "[[tools]]", "tools[0].expected_latency", "required"),
        (('{ Authorization = "ACME_INSURER_AUTH" }', '{ Authorization = "Bearer s3cret" }'),
         "headers_from_env", "tools[0].headers_from_env.Authorization", "environment variable"),
        (('url = "https://insurer.example/v1/check"', 'url = "ftp://insurer"'), "ftp://",
         "tools[0].url", "http:// or https://"),
        (('properties.patient = { type = "string" }', 'properties.patient = { type = "text" }'),
         "[tools.parameters]", "tools[0].parameters", "not a valid JSON Schema"),
        (('description = "Checks coverage."', 'description = "Checks coverage."\nprimary = true'),
         "primary = true\ntools", "agents[1].primary", "exactly one agent"),
        (("latency = { search = 12 }", "latency = { search = -1 }"), "latency = {",
         "mcp_servers[0].latency.search", "number of seconds"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_naming_its_line_and_key(
    change: tuple[str, str], line_of: str, key: str, problem: str
) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    error = refusal(text)
    first = line_of.split("\n")[0]
    lines = text.splitlines()
    expected = next(n for n, row in enumerate(lines, start=1) if first in row)
    if line_of == "primary = true\ntools":
        expected = next(
            n for n, row in enumerate(lines, start=1) if row == "primary = true" and n > 20
        )
    assert (error.line, error.key) == (expected, key), str(error)
    assert problem in error.problem
    assert str(error).startswith(f"acme.toml:{expected}: {key}: ")


def test_broken_toml_is_refused_at_its_line() -> None:
    error = refusal(GOOD.replace('name = "Acme Clinic"', 'name = "Acme Clinic'))
    assert error.line == 4
    assert "not valid TOML" in str(error)


def test_no_value_of_the_file_is_quoted_in_an_error() -> None:
    # A header written in the file (a secret) or a patient's name must never be echoed.
    error = refusal(GOOD.replace('"ACME_INSURER_AUTH"', '"Bearer 0123-secret"'))
    assert "0123-secret" not in str(error)
    with_patient = (
        GOOD + '\n[patients]\nsource = "inline"\n[[patients.records]]\nid = "x"\nname = 7\n'
    )
    assert "7" not in refusal(with_patient).problem


def test_mcp_servers_need_a_command_or_a_url_and_tool_names_stay_apart() -> None:
    assert (
        "exactly one of command"
        in refusal(
            GOOD.replace(
                'url = "http://127.0.0.1:9000/mcp"', 'command = ["x"]\nurl = "http://h/mcp"'
            )
        ).problem
    )
    clash = GOOD.replace('name = "coverage.check"', 'name = "docs.check"').replace(
        '"coverage.check", "docs.*"', '"docs.check"'
    )
    assert refusal(clash).problem == "is also the prefix of a tool's name"


def test_the_documented_example_is_a_valid_workspace_file() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "WORKSPACES.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = parse_workspace(example, source="WORKSPACES.md")
    assert spec.id == "northwind"
    assert [a.id for a in spec.agents] == ["reception", "benefits-checker", "document-clerk"]
    assert spec.mcp_servers[0].env_from == {"DOCS_TOKEN": "NORTHWIND_DOCS_TOKEN"}

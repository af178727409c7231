"""Patient scope: a patient's token sees and hears only that patient's record.

Through every tool of the demo workspace, a patient who names another patient hears
exactly what naming a patient who does not exist gets (the name aside), no work about
that other patient is started, and nothing of their chart reaches the socket. The
tools are read from the workspace file, so a tool added later without a probe here
fails :func:`test_every_tool_has_a_probe`. The routes and socket commands are probed
in ``test_hidden_everywhere.py``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ServerProcess, conversation_ws, open_wire, start_conversation, token

WORKSPACE_FILE = Path(__file__).parents[2] / "agents" / "demo" / "workspace.toml"

TOOL_PROBES = {
    "records.lookup": "Look up {name}'s chart",
    "payer.prior_auth": "Start a prior authorization for Mounjaro for {name}",
    "phone.call": "Call {name}",
}
"""Each tool of the demo workspace, and words that ask for it about a named patient."""

DANA = token("dana-at-home", patient="pt-dana")
# Evan's chart, as nothing said to Dana may hold it.
EVAN = ("Evan", "Okafor", "1959-08-30", "MRN-100235", "555-0105", "Cedar Mutual", "pt-evan")
NOBODY = "Zelda"
"""A name that no patient of the directory has."""


def test_every_tool_has_a_probe() -> None:
    declared = {t["name"] for t in tomllib.loads(WORKSPACE_FILE.read_text())["tools"]}
    assert declared == set(TOOL_PROBES), f"tools with no probe: {declared - set(TOOL_PROBES)}"


async def answer_to(server: ServerProcess, tok: str, text: str) -> tuple[str, list[dict[str, Any]]]:
    """The agent's reply to *text* in a fresh conversation of *tok*'s, and every frame."""
    conv = await start_conversation(server, tok)
    url = conversation_ws(server, conv["conversation_id"])
    async with open_wire(url, tok, chat_id=conv["chat_id"]) as wire:
        asked = await wire.say(text)
        reply = await wire.message(since=asked, role="agent", kind="reply")
        return str(reply["text"]), list(wire.frames)


@pytest.mark.e2e
@pytest.mark.anyio
@pytest.mark.parametrize("tool", sorted(TOOL_PROBES))
async def test_a_patient_naming_another_patient_hears_what_nobody_gets(
    server_factory: Any, tool: str
) -> None:
    server = server_factory()
    words = TOOL_PROBES[tool]
    other, other_frames = await answer_to(server, DANA, words.format(name="Evan"))
    nobody, _ = await answer_to(server, DANA, words.format(name=NOBODY))
    assert other.replace("Evan", NOBODY) == nobody, (other, nobody)
    for frame in other_frames:
        if frame.get("role") == "user":
            continue  # Dana's own words, which named him
        seen = json.dumps(frame)
        assert not [x for x in EVAN if x in seen], frame
    # No work about him was started: no task is there to show.
    assert not [f for f in other_frames if f.get("type") == "task.update"], other


@pytest.mark.e2e
@pytest.mark.anyio
async def test_a_patient_hears_their_own_chart_and_staff_hear_any(server_factory: Any) -> None:
    server = server_factory()
    own, _ = await answer_to(server, DANA, "Who is Dana's provider?")
    assert "Natarajan" in own, own
    staff, _ = await answer_to(server, token("front-desk-1"), "What is Evan's date of birth?")
    assert "1959" in staff or "August 30" in staff, staff

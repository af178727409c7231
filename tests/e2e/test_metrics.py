"""Liveness, readiness and Prometheus metrics, as a monitoring system scrapes them."""

from __future__ import annotations

import re

import httpx
import pytest

from .conftest import ServerProcess, conversation_ws, open_wire, start_conversation, token

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

METRICS = {
    "switchboard_open_sockets": "gauge",
    "switchboard_live_conversations": "gauge",
    "switchboard_live_tasks": "gauge",
    "switchboard_events_stored_total": "counter",
    "switchboard_audit_events_written_total": "counter",
    "switchboard_audit_write_failures_total": "counter",
    "switchboard_store_up": "gauge",
    "switchboard_tasks": "gauge",
    "switchboard_say_ack_seconds": "histogram",
    "switchboard_turn_seconds": "histogram",
    "switchboard_task_seconds": "histogram",
    "switchboard_replay_seconds": "histogram",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
}
STATES = (
    "submitted",
    "working",
    "input_required",
    "cancelling",
    "completed",
    "failed",
    "cancelled",
    "interrupted",
)
_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})? (?P<value>[-+0-9.eE]+|NaN|[+-]Inf)$"
)


def parse_exposition(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """The types and samples of Prometheus text format 0.0.4; asserts it is well formed."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in types, f"{name} declared twice"
            types[name] = kind
        elif line.startswith("#"):
            assert line.startswith("# HELP "), line
        else:
            found = _SAMPLE.match(line)
            assert found is not None, f"not a sample line: {line!r}"
            key = found["name"] + (found["labels"] or "")
            assert key not in samples, f"{key} sampled twice"
            name = found["name"]
            # A histogram's samples are its name's _bucket, _count and _sum.
            family = next(
                (
                    name.removesuffix(suffix)
                    for suffix in ("_bucket", "_count", "_sum")
                    if name.endswith(suffix) and types.get(name.removesuffix(suffix)) == "histogram"
                ),
                name,
            )
            assert family in types, f"{name} has no TYPE line"
            samples[key] = float(found["value"])
    return types, samples


async def scrape(server: ServerProcess) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    content_type = answer.headers["content-type"]
    assert content_type.startswith("text/plain"), content_type
    assert "version=0.0.4" in content_type, content_type
    types, samples = parse_exposition(answer.text)
    for name, kind in METRICS.items():
        assert types.get(name) == kind, (name, types)
    return samples


async def test_health_readiness_and_metrics(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200

    idle = await scrape(server)
    assert idle["switchboard_open_sockets"] == 0
    assert idle["switchboard_store_up"] == 1
    for state in STATES:
        assert f'switchboard_tasks{{state="{state}"}}' in idle, state

    tok = token()
    conv = await start_conversation(server, tok)
    async with open_wire(
        conversation_ws(server, conv["conversation_id"]), tok, chat_id=conv["chat_id"]
    ) as wire:
        await wire.say("Reach every patient who hasn't completed onboarding")
        await wire.message(kind="followup", within=30)
        busy = await scrape(server)
        assert busy["switchboard_open_sockets"] == 1
        assert busy["switchboard_live_conversations"] >= 1
        completed = busy['switchboard_tasks{state="completed"}']
        assert completed - idle['switchboard_tasks{state="completed"}'] == 3
        assert busy["switchboard_events_stored_total"] >= wire.last_seq
        assert busy["switchboard_audit_events_written_total"] > 0
        assert busy["switchboard_audit_write_failures_total"] == 0
        # How long things took: the say acked, the turn answered, three calls by their
        # agent, the socket's replay.
        assert busy["switchboard_say_ack_seconds_count"] == 1
        assert busy["switchboard_turn_seconds_count"] >= 1
        calls = 'switchboard_task_seconds_count{agent="outreach-caller",state="completed"}'
        assert busy[calls] == 3
        assert busy["switchboard_replay_seconds_count"] == 1
        assert busy["process_resident_memory_bytes"] > 0

    async with httpx.AsyncClient(base_url=server.http, timeout=15) as client:
        text = (await client.get("/metrics")).text
    # Counts only: no ids, no names, nothing from a record.
    for secret in (conv["conversation_id"], conv["chat_id"], "Alice", "pat"):
        assert re.search(rf"\b{re.escape(secret)}\b", text) is None, secret

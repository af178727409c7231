"""P7's peer speaks what Switchboard speaks, and a quick P7 run measures both servers.

The peer (``bench/peers/channels/``) is driven with the same frames as Switchboard's
bench server and must answer with frames of the same shape: same types, same fields,
same close codes. Ids and times differ; the order of a say's ``ack`` and the person's
``message`` is the server's to choose (PROTOCOL.md does not fix it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from bench.client import open_socket
from bench.harness import ServerProcess, person_token
from bench.peers.channels_peer import channels_peer
from bench.scenario import RunContext

ROOT = Path(__file__).resolve().parents[2]
OPAQUE = {"conversation_id", "chat_id", "message_id", "ts"}

pytestmark = pytest.mark.e2e


def _shape(frame: dict[str, Any]) -> dict[str, Any]:
    return {k: (f"<{k}>" if k in OPAQUE else v) for k, v in frame.items()}


async def _transcript(server: ServerProcess) -> list[Any]:
    """What *server* answers to hello, say, ping, resume, bad frames and bad tokens."""
    conversation_id, _ = await server.create_conversation("p1")
    url = f"{server.ws}/v1/conversations/{conversation_id}/ws"
    token = person_token("p1")
    seen: list[Any] = []

    async def recv(ws: Any, n: int) -> list[dict[str, Any]]:
        return [_shape(json.loads(await ws.recv())) for _ in range(n)]

    ws = await open_socket(url)
    await ws.send(json.dumps({"type": "hello", "token": token, "client": "bench"}))
    seen += await recv(ws, 1)
    await ws.send(json.dumps({"type": "say", "id": "s1", "text": "echo one"}))
    said = await recv(ws, 3)
    # The agent's reply comes last; the ack and the person's message in either order.
    seen += [*sorted(said[:2], key=lambda f: str(f["type"])), said[2]]
    frames: list[Any] = [
        {"type": "ping", "id": "p1"},
        {"type": "nope", "id": "x1"},
        {"type": "say", "id": "x2"},
        {"type": "say", "id": "x3", "text": "x" * 16_001},
        {"type": "ping"},
        {"type": "hello", "token": token},
        [],
    ]
    for frame in frames:
        await ws.send(json.dumps(frame))
        seen += await recv(ws, 1)
    for raw in ("not json", '{"type": "ping", "type": "say", "id": "x4"}', b"\x00"):
        await ws.send(raw)
        seen += await recv(ws, 1)
    await ws.close()

    for resume_after in (1, 9):
        ws = await open_socket(url)
        hello = {"type": "hello", "token": token, "resume_after": resume_after}
        await ws.send(json.dumps(hello))
        seen += await recv(ws, 2)
        await ws.close()

    ws = await open_socket(url)
    # Before hello, another frame is refused and the socket still waits for one.
    await ws.send(json.dumps({"type": "say", "id": "s0", "text": "echo before hello"}))
    await ws.send(json.dumps({"type": "hello", "token": token, "resume_after": -1}))
    await ws.send(json.dumps({"type": "hello", "token": token, "resume_after": 2}))
    seen += await recv(ws, 3)
    await ws.close()

    hellos: list[dict[str, str]] = [
        {"type": "hello", "token": "not-a-token"},
        {"type": "hello"},
        {"type": "hello", "token": person_token("p2")},
    ]
    for refused in hellos:
        ws = await open_socket(url)
        await ws.send(json.dumps(refused))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        seen.append(("closed", ws.close_code))
    return seen


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_the_peer_answers_as_switchboard_does(tmp_path: Path, peer_python: Path) -> None:
    ctx = RunContext(tmp_path, 0)
    async with ctx.server() as server:
        ours = await _transcript(server)
    async with channels_peer(ctx, peer_python) as peer:
        theirs = await _transcript(peer.server)
    assert theirs == ours, theirs
    assert ("closed", 4401) in ours
    assert ("closed", 4404) in ours


@pytest.mark.timeout(240)
def test_quick_p7_measures_both_servers(tmp_path: Path, peer_python: Path) -> None:
    out = tmp_path / "p7.json"
    command = [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--only", "P7"]
    done = subprocess.run(
        [*command, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["pinning"]["pinned"] == (document["machine"]["cores_usable"] >= 2)
    p7 = document["scenarios"]["P7"]
    assert p7["error"] is None
    metrics = {name: figure["median"] for name, figure in p7["metrics"].items()}
    for server in ("switchboard", "channels"):
        assert metrics[f"{server}_says_sent"] > 0
        assert metrics[f"{server}_unanswered"] == 0
        assert metrics[f"{server}_errors"] == 0
        for figure in ("says_per_s", "cpu_ms_per_say", "reply_p50_ms", "reply_p99_ms"):
            assert metrics[f"{server}_{figure}"] > 0
    assert metrics["ratio"] > 0
    assert metrics["channels_redis_cpu_ms_per_say"] > 0

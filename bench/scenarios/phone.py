"""P11: phone calls through the Twilio Media Streams bridge — how soon a caller hears the
answer, and how many calls one bridge process holds within 1.5 s.

Three processes, as deployed: ``switchboard serve`` (the demo workspace, the rule
brain), ``python -m bridges.phone`` in front of it (pocketsphinx with a front-desk
vocabulary, espeak-ng, two workers each), and this one, which is Twilio
(:mod:`bench.twilio_line`): each call fetches the signed TwiML, opens a Media Stream and
sends a 20 ms μ-law frame every 20 ms, speech or silence, for as long as it lasts.

The caller's lines are espeak-ng's, and none asks for anything a patient's record is
needed for (a greeting, the opening hours, thanks), so the figure does not depend on
what the agent answers or whether it first asks who is calling. A caller speaks, waits
for the answer to start and to finish playing (its ``mark`` echoed), pauses a moment,
and says the next line. The figure is, per line, **the last voiced frame written → the
first ``media`` frame of the answer received**: it includes the detector's 600 ms
hangover (the time it takes to know the caller has stopped), speech-to-text, the
server's turn, and text-to-speech.

Calls are ramped 1, 2, 4, 8, … (each level with fresh calls, started at random moments
over two seconds so that they are not in step); the ramp stops at the first level whose
p95 reaches the budget. ``calls_held`` is the largest level within it.

Speech CPU work stays off the bridge's event loop: the bridge paces its reply frames by
the clock, so a loop held up by another call's speech-to-text would show as a late
frame. ``stt_frame_gap_max_ms`` is the longest gap between two frames of a reply that
overlaps another call's wait for its answer (speech-to-text running) at the level held.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cores import pin_server
from bench.harness import ROOT, free_port
from bench.scenario import (
    Comparison,
    Metric,
    Metrics,
    Params,
    RunContext,
    Scenario,
    Target,
    percentile,
)
from bench.twilio_line import Turn, TwilioLine, answer
from bridges.speech import EspeakSynthesizer, synthesize_frames

LINES = (
    "Hello, how are you today?",
    "What are your opening hours?",
    "Thank you very much.",
)
VOCABULARY = (
    *LINES,
    "hello",
    "good morning",
    "what time do you open",
    "when are you closed",
    "thanks a lot",
    "I need a prior authorization",
    "can you check my appointment",
    "goodbye",
)
SIGNING_SECRET = "the-bench's-phone-signing-secret-0123456789"
AUTH_TOKEN = "the-bench's-twilio-auth-token"
HANGOVER_S = 0.6  # the bridge's voice activity hangover (bridges/speech/vad.py)
REPLY_TIMEOUT_S = 10.0
QUIET_S = 0.5  # the caller's ear: this long without the agent's audio, it has finished
STAGGER_S = 2.0
START_TIMEOUT_S = 30.0


@dataclass
class Level:
    calls: int
    turns: list[Turn]
    lines: list[TwilioLine]
    seconds: float
    bridge_cpu: float
    server_cpu: float

    @property
    def latencies_ms(self) -> list[float]:
        return [
            (t.first_reply - t.spoke_until) * 1000 for t in self.turns if t.first_reply is not None
        ]

    @property
    def unanswered(self) -> int:
        return sum(1 for t in self.turns if t.first_reply is None)

    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95) if self.latencies_ms else float("inf")


@dataclass
class BridgeProcess:
    http: str
    process: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.process.pid


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def prepare(workdir: Path, p: Params) -> tuple[list[list[bytes]], Path]:
    tts = EspeakSynthesizer()
    lines = [await synthesize_frames(tts, text) for text in LINES]
    vocabulary = workdir / "vocabulary.txt"
    vocabulary.write_text("\n".join(VOCABULARY) + "\n")
    return lines, vocabulary


@contextlib.asynccontextmanager
async def bridge_process(
    ctx: RunContext, server_http: str, vocabulary: Path
) -> AsyncIterator[BridgeProcess]:
    """``python -m bridges.phone`` in front of *server_http*, once its webhook answers."""
    port = free_port()
    http = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SWITCHBOARD_PHONE_SECRET": SIGNING_SECRET,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    env.pop("SWITCHBOARD_SECRET", None)  # the development secret, as the demo server's
    with ctx.path("bridge.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridges.phone",
            "--server",
            server_http,
            "--port",
            str(port),
            "--public-url",
            http,
            "--workspace",
            "demo",
            "--vocabulary",
            str(vocabulary),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    pin_server(process.pid)  # the bridge is the server side too: the server's core
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                await answer(http, AUTH_TOKEN, "+15550000", "CA-probe")
                break
            except OSError:
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError("the phone bridge did not start") from None
                await asyncio.sleep(0.1)
        yield BridgeProcess(http, process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def wait_quiet(line: TwilioLine, seconds: float, at_most: float) -> None:
    """Until the agent has been silent *seconds* (as the caller hears it), or *at_most*."""
    deadline = time.perf_counter() + at_most
    while line.quiet_for() < seconds and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


async def place_call(
    bridge: BridgeProcess,
    number: str,
    rounds: int,
    lines: Sequence[list[bytes]],
    rng: random.Random,
) -> TwilioLine:
    """One caller: says *rounds* lines, each once the answer to the last has played."""
    await asyncio.sleep(rng.uniform(0, STAGGER_S))
    call_sid = f"CA{number[1:]:0>32}"
    parameters = await answer(bridge.http, AUTH_TOKEN, number, call_sid)
    url = parameters.pop("url")
    line = await TwilioLine.open(url, parameters, call_sid)
    async with asyncio.TaskGroup() as tg:
        carrying = tg.create_task(line.run())
        # Whatever the agent says first (a greeting, a question), the caller lets it finish.
        await asyncio.sleep(1.0)
        await wait_quiet(line, 1.0, REPLY_TIMEOUT_S)
        first = rng.randrange(len(lines))
        for n in range(rounds):
            turn = await line.say(lines[(first + n) % len(lines)])
            deadline = time.perf_counter() + REPLY_TIMEOUT_S
            while turn.first_reply is None and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await wait_quiet(line, QUIET_S, 4 * REPLY_TIMEOUT_S)
            await asyncio.sleep(rng.uniform(0.2, 0.8))
        await line.hang_up()
        carrying.cancel()
    return line


async def run_level(
    bridge: BridgeProcess,
    server_pid: int,
    calls: int,
    rounds: int,
    lines: Sequence[list[bytes]],
    seed: int,
) -> Level:
    rng = random.Random(seed)
    bridge_cpu, server_cpu = cpu_seconds(bridge.pid), cpu_seconds(server_pid)
    started = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        placed = [
            tg.create_task(
                place_call(
                    bridge,
                    f"+1{seed % 100:02d}{calls:03d}{n:04d}",
                    rounds,
                    lines,
                    random.Random(rng.random()),
                )
            )
            for n in range(calls)
        ]
    seconds = time.perf_counter() - started
    done = [task.result() for task in placed]
    return Level(
        calls,
        [t for line in done for t in line.turns],
        done,
        seconds,
        (cpu_seconds(bridge.pid) - bridge_cpu) / seconds * 100,
        (cpu_seconds(server_pid) - server_cpu) / seconds * 100,
    )


def frame_gaps(level: Level) -> tuple[list[float], list[float]]:
    """Gaps (ms) between consecutive frames of each reply, all of them and those that
    overlap another call's wait for its answer (its speech-to-text, at the least)."""
    windows = [
        (index, t.spoke_until + HANGOVER_S, t.first_reply)
        for index, line in enumerate(level.lines)
        for t in line.turns
        if t.first_reply is not None
    ]
    every: list[float] = []
    during: list[float] = []
    for index, line in enumerate(level.lines):
        for reply in line.replies:
            for before, after in itertools.pairwise(reply):
                gap = (after - before) * 1000
                every.append(gap)
                if any(i != index and a < after and before < b for i, a, b in windows):
                    during.append(gap)
    return every, during


async def run(ctx: RunContext, p: Params, prepared: Any) -> Metrics:
    lines, vocabulary = prepared
    budget = float(p["budget_ms"])
    levels: list[Level] = []
    async with (
        ctx.server(module=("server", "serve")) as server,
        bridge_process(ctx, server.http, vocabulary) as bridge,
    ):
        for calls in p["levels"]:
            rounds = int(p["rounds_one"] if calls == 1 else p["rounds"])
            level = await run_level(
                bridge, server.pid, calls, rounds, lines, seed=ctx.run_index * 1000 + calls
            )
            levels.append(level)
            latencies = level.latencies_ms
            ctx.log(
                f"    {calls:>3} calls: p50 {statistics.median(latencies or [0]):.0f} ms, "
                f"p95 {level.p95_ms():.0f} ms, max {max(latencies or [0]):.0f} ms over "
                f"{len(latencies)} lines ({level.unanswered} unanswered); bridge CPU "
                f"{level.bridge_cpu:.0f} %, server {level.server_cpu:.0f} %"
            )
            if level.p95_ms() >= budget or level.unanswered:
                break
    one = levels[0]
    held = [lv for lv in levels if lv.p95_ms() < budget and not lv.unanswered]
    metrics: Metrics = {
        "p50_ms": percentile(one.latencies_ms, 50),
        "p95_ms": percentile(one.latencies_ms, 95),
        "max_ms": max(one.latencies_ms),
        "lines": float(len(one.latencies_ms)),
        "calls_held": float(held[-1].calls if held else 0),
        "unanswered": float(sum(lv.unanswered for lv in held)),
    }
    if held:
        top = held[-1]
        every, during = frame_gaps(top)
        metrics |= {
            "held_p50_ms": percentile(top.latencies_ms, 50),
            "held_p95_ms": percentile(top.latencies_ms, 95),
            "held_lines": float(len(top.latencies_ms)),
            "frame_gap_p99_ms": percentile(every, 99),
            "frame_gap_max_ms": max(every),
            "bridge_cpu_percent": top.bridge_cpu,
            "server_cpu_percent": top.server_cpu,
            "client_lag_p99_ms": percentile(
                [lag * 1000 for line in top.lines for lag in line.send_lag], 99
            ),
        }
        if during:
            metrics["stt_frame_gap_max_ms"] = max(during)
    if len(levels) > len(held):
        beyond = levels[len(held)]
        metrics |= {"beyond_calls": float(beyond.calls), "beyond_p95_ms": beyond.p95_ms()}
    return metrics


SCENARIO = Scenario(
    id="P11",
    title="phone calls: end of speech → first audio of the answer, and calls held",
    metrics=(
        Metric("calls_held", "", "most concurrent calls with that latency's p95 under budget"),
        Metric("p50_ms", "ms", "one call: last voiced frame sent → first media frame back"),
        Metric("p95_ms", "ms", "one call: 95th percentile of the same"),
        Metric("max_ms", "ms", "one call: slowest line"),
        Metric("lines", "", "one call: lines measured"),
        Metric("held_p50_ms", "ms", "at calls_held: median latency"),
        Metric("held_p95_ms", "ms", "at calls_held: 95th percentile latency"),
        Metric("held_lines", "", "at calls_held: lines measured"),
        Metric("beyond_calls", "", "the first level over budget"),
        Metric("beyond_p95_ms", "ms", "its 95th percentile latency"),
        Metric("unanswered", "", "lines without an answer in 10 s, at the levels held"),
        Metric("frame_gap_p99_ms", "ms", "at calls_held: gap between a reply's frames, p99"),
        Metric("frame_gap_max_ms", "ms", "at calls_held: longest gap in a reply"),
        Metric(
            "stt_frame_gap_max_ms",
            "ms",
            "at calls_held: longest gap in a reply while another call awaited its answer",
        ),
        Metric("bridge_cpu_percent", "%", "at calls_held: the bridge process's CPU"),
        Metric("server_cpu_percent", "%", "at calls_held: the server's CPU"),
        Metric("client_lag_p99_ms", "ms", "at calls_held: this process's lateness sending"),
    ),
    target=Target("calls_held", Comparison.AT_LEAST, 1.0),
    full={"levels": [1, 2, 4, 8, 16, 32, 64], "rounds_one": 12, "rounds": 4, "budget_ms": 1500},
    quick={"levels": [1, 2], "rounds_one": 3, "rounds": 2, "budget_ms": 1500},
    run=run,
    prepare=prepare,
)

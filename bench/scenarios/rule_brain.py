"""P12: the CPU time of one rule-brain turn with 100 tasks running in the conversation.

No server: the rule brain is what a node runs for every turn of the embedded default,
so it is measured on its own, in this process. The conversation has 100 running
tasks (prior auths and calls for the demo's patients, titled as the brain titles
them) and a full transcript (40 lines); each turn is a sentence the way staff talk —
status questions, cancels of one of several, instructions, negations, new work,
small talk, typos — made distinct from every earlier one, so that no turn is answered
from the brain's cache of sentences it has read. The figure is the thread CPU time of
``RuleBrain.respond``, per turn, after a warm-up.
"""

from __future__ import annotations

import time

from agents.brains import TaskSummary, TranscriptLine, Turn
from agents.brains.rule import RuleBrain
from agents.demo.patients import demo_patients
from agents.demo.workspace import OUTREACH_CALLER, PRIOR_AUTH_SPECIALIST, demo_agents
from agents.memory import MemoryStore
from agents.models import MessageKind, MessageRole, TaskState
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

TASKS = 100
SAYINGS = (
    "how's Dana's prior auth going?",
    "cancel the prior auth for Hana",
    "cancel the Ozempic one",
    "actually cancel Dana's one",
    "never mind Hana's request",
    "is it approved yet?",
    "have you managed to get hold of Carol?",
    "also tell them it's urgent",
    "let the payer know Dana has run out of her pen, it's urgent",
    "hold off on calling Bob",
    "Do not call the onboarding patients today.",
    "reach evry patint who hasnt finished onbording",
    "could you chase up the onboarding stragglers",
    "any news from the insurer on Dana?",
    "stop all the calls but leave the PAs",
    "what's Evan's phone number?",
    "start a prior auth for Mounjaro for Gus",
    "status?",
    "thanks so much",
    "the weather is nice today",
)
SUFFIXES = ("", " please", " thanks", " now", " for me", " asap", " today", " ok")


def _tasks() -> tuple[TaskSummary, ...]:
    """100 running tasks, newest first, titled the way the brain titles them."""
    patients = demo_patients()
    medicines = ("Ozempic", "Mounjaro", "Humira", "Wegovy", "Jardiance")
    found: list[TaskSummary] = []
    for n in range(TASKS):
        patient = patients[n % len(patients)]
        first, last = patient.name.split()
        who = f"{first} {last[0]}."
        if n % 2:
            title, subject, agent = f"Call {who}", first, OUTREACH_CALLER
            progress = f"Ringing {first}…"
        else:
            medicine = medicines[n // 2 % len(medicines)]
            title, subject, agent = (
                f"Prior auth: {medicine} for {who}",
                medicine,
                PRIOR_AUTH_SPECIALIST,
            )
            progress = "Still waiting on the payer — a decision is expected within a minute."
        found.append(
            TaskSummary(f"t-{n}", title, subject, agent, False, TaskState.WORKING, progress)
        )
    return tuple(reversed(found))


def _transcript(n: int, text: str) -> tuple[TranscriptLine, ...]:
    lines = []
    for i in range(39):
        said = SAYINGS[(n + i) % len(SAYINGS)]
        role = MessageRole.USER if i % 2 else MessageRole.AGENT
        lines.append(TranscriptLine(role, MessageKind.REPLY, said, None))
    lines.append(TranscriptLine(MessageRole.USER, MessageKind.REPLY, text, None))
    return tuple(lines)


async def run(ctx: RunContext, p: Params, prepared: object) -> Metrics:
    store = MemoryStore()
    await store.save_patients(demo_patients())
    agents = tuple(demo_agents())
    brain = RuleBrain(store)
    tasks = _tasks()
    turns = int(p["turns"])
    warmup = int(p["warmup"])
    times: list[float] = []
    for n in range(warmup + turns):
        # Distinct sentences: the turn index makes each one new to the brain's cache.
        text = f"{SAYINGS[n % len(SAYINGS)]}{SUFFIXES[n // len(SAYINGS) % len(SUFFIXES)]}"
        text += f" (#{n})"
        turn = Turn(text, agents[0], agents, tasks, f"bench-{ctx.run_index}", _transcript(n, text))
        started = time.thread_time()
        await brain.respond(turn)
        spent = time.thread_time() - started
        if n >= warmup:
            times.append(spent * 1000)
    return {
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "p99_ms": percentile(times, 99),
        "max_ms": max(times),
        "tasks": float(TASKS),
        "turns": float(turns),
    }


SCENARIO = Scenario(
    id="P12",
    title="rule brain: CPU per turn, 100 tasks running",
    metrics=(
        Metric("p50_ms", "ms", "median CPU time of one turn"),
        Metric("p95_ms", "ms", "95th percentile CPU time of one turn"),
        Metric("p99_ms", "ms", "99th percentile CPU time of one turn"),
        Metric("max_ms", "ms", "slowest turn"),
        Metric("tasks", "", "tasks running in the conversation"),
        Metric("turns", "", "turns measured"),
    ),
    target=Target("p95_ms", Comparison.BELOW, 2.0),
    full={"turns": 2000, "warmup": 200},
    quick={"turns": 300, "warmup": 50},
    run=run,
)

"""The benchmarks, in the order they run."""

from __future__ import annotations

from bench.scenario import Scenario
from bench.scenarios import (
    cancel,
    fanout,
    latency,
    llm_brain,
    peer,
    phone,
    resume,
    rule_brain,
    sockets,
    throughput,
)

SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (
        latency.SCENARIO,
        fanout.SCENARIO,
        cancel.SCENARIO,
        throughput.SCENARIO,
        sockets.SCENARIO,
        resume.SCENARIO,
        peer.SCENARIO,
        rule_brain.SCENARIO,
        llm_brain.SCENARIO,
        phone.SCENARIO,
    )
}

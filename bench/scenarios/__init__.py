"""The benchmarks, in the order they run."""

from __future__ import annotations

from bench.scenario import Scenario
from bench.scenarios import (
    cancel,
    fanout,
    gc_pause,
    latency,
    live_memory,
    llm_brain,
    peer,
    phone,
    reconnect,
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
        reconnect.SCENARIO,
        gc_pause.SCENARIO,
        live_memory.SCENARIO,
        phone.SCENARIO,
        rule_brain.SCENARIO,
        llm_brain.SCENARIO,
    )
}

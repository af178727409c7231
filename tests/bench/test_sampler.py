"""The in-process sampler (``--profile``) splits CPU time the way it was spent."""

from __future__ import annotations

import time
from pathlib import Path

from bench.profile import read, summarize
from bench.sampler import Sampler


def _spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def one_share() -> int:
    return _spin(20_000)


def two_shares() -> int:
    return _spin(40_000)


def test_samples_split_cpu_time_by_the_function_that_spent_it(tmp_path: Path) -> None:
    output = tmp_path / "samples.txt"
    sampler = Sampler(output)
    sampler.start()
    started = time.process_time()
    while time.process_time() - started < 1.5:
        one_share()
        two_shares()
    count = sampler.stop()

    stacks = read(output)
    assert count == sum(n for _, n in stacks) > 100
    shares = {"one_share": 0, "two_shares": 0}
    for frames, n in stacks:
        for name in shares:
            if any(frame.startswith(name + " ") for frame in frames):
                shares[name] += n
    assert abs(shares["one_share"] / count - 1 / 3) < 0.12, shares
    assert abs(shares["two_shares"] / count - 2 / 3) < 0.12, shares
    # Frames are named with their qualified names, outermost first, with their files.
    assert any(frames[-1].startswith("_spin (") for frames, _ in stacks)
    assert "samples" in summarize(stacks)


def test_stopped_sampler_leaves_the_timer_off(tmp_path: Path) -> None:
    import signal

    sampler = Sampler(tmp_path / "samples.txt")
    sampler.start()
    sampler.stop()
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGPROF) == signal.SIG_DFL

"""The rule brain's corpus: parsing its files and judging what a runtime did with each
utterance (see README.md in this directory)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
VERBS = frozenset({"none", "ask", "start", "cancel", "instruct", "status", "lookup"})

SCENARIOS: Mapping[str, tuple[str, ...]] = {
    "empty": (),
    "dana-pa": ("Start a prior authorization for Ozempic for Dana",),
    "two-pas": (
        "Start a prior authorization for Ozempic for Dana",
        "Start a prior authorization for Ozempic for Hana",
    ),
    "pa-mix": (
        "Start a prior authorization for Ozempic for Dana",
        "Start a prior authorization for Mounjaro for Hana",
    ),
    "calls": ("Reach every patient who hasn't completed onboarding",),
    "bob-call": ("Call Bob",),
    "busy": (
        "Start a prior authorization for Ozempic for Dana",
        "Start a prior authorization for Ozempic for Hana",
        "Reach every patient who hasn't completed onboarding",
        "Call Evan",
    ),
}
"""What is said before each case, and so what is running when it is said."""

SCENARIO_TASKS: Mapping[str, frozenset[str]] = {
    "empty": frozenset(),
    "dana-pa": frozenset({"dana-pa"}),
    "two-pas": frozenset({"dana-pa", "hana-pa"}),
    "pa-mix": frozenset({"dana-pa", "hana-pa"}),
    "calls": frozenset({"alice-call", "bob-call", "carol-call"}),
    "bob-call": frozenset({"bob-call"}),
    "busy": frozenset({"dana-pa", "hana-pa", "alice-call", "bob-call", "carol-call", "evan-call"}),
}


@dataclass(frozen=True, slots=True)
class Expect:
    verb: str
    keys: frozenset[str]

    def __str__(self) -> str:
        return " ".join([self.verb, *sorted(self.keys)])


@dataclass(frozen=True, slots=True)
class Case:
    source: str
    line: int
    scenario: str
    turns: tuple[tuple[str, Expect], ...]


def parse(path: Path) -> list[Case]:
    """The cases of one corpus file. Raises ValueError on a malformed line."""
    cases: list[Case] = []
    scenario = "empty"
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            scenario = line[1:].strip()
            if scenario not in SCENARIOS:
                raise ValueError(f"{path.name}:{number}: unknown scenario {scenario!r}")
            continue
        follow = line.startswith("+")
        if follow:
            line = line[1:].strip()
        if "=>" not in line:
            raise ValueError(f"{path.name}:{number}: no '=>'")
        text, _, expected = line.rpartition("=>")
        verb, *keys = expected.split()
        if verb not in VERBS:
            raise ValueError(f"{path.name}:{number}: unknown expectation {verb!r}")
        turn = (text.strip(), Expect(verb, frozenset(keys)))
        if follow:
            if not cases:
                raise ValueError(f"{path.name}:{number}: '+' with nothing to continue")
            last = cases[-1]
            cases[-1] = Case(last.source, last.line, last.scenario, (*last.turns, turn))
        else:
            cases.append(Case(path.name, number, scenario, (turn,)))
    return cases


@dataclass(frozen=True, slots=True)
class Observed:
    """What one turn did: the brain's decision, and its effects in the store."""

    action: str
    """``reply``, ``status``, ``lookup``, ``start``, ``cancel`` or ``instruct``."""
    reply: str
    started: frozenset[str]
    cancelled: frozenset[str]
    instructed: frozenset[str]
    status: frozenset[str] = frozenset()
    looked_up: frozenset[str] = frozenset()


def wrong_actions(expect: Expect, seen: Observed) -> list[str]:
    """The effects *expect* does not allow: work started, cancelled, instructed, or read."""
    allowed = {verb: expect.keys if expect.verb == verb else frozenset() for verb in VERBS}
    wrong = [f"started {k}" for k in sorted(seen.started - allowed["start"])]
    wrong += [f"cancelled {k}" for k in sorted(seen.cancelled - allowed["cancel"])]
    wrong += [f"instructed {k}" for k in sorted(seen.instructed - allowed["instruct"])]
    wrong += [f"read the chart of {k}" for k in sorted(seen.looked_up - allowed["lookup"])]
    return wrong


def understood(expect: Expect, seen: Observed) -> bool:
    """Whether exactly what *expect* says happened."""
    quiet = not (seen.started or seen.cancelled or seen.instructed or seen.looked_up)
    if expect.verb == "none":
        return quiet and seen.action == "reply"
    if expect.verb == "ask":
        names = {k.split("-")[0].capitalize() for k in expect.keys}
        asked = seen.reply.rstrip().endswith("?") and all(n in seen.reply for n in names)
        return quiet and seen.action == "reply" and asked
    observed = {
        "start": seen.started,
        "cancel": seen.cancelled,
        "instruct": seen.instructed,
        "status": seen.status,
        "lookup": seen.looked_up,
    }[expect.verb]
    others = {"start", "cancel", "instruct", "lookup"} - {expect.verb}
    clean = all(
        not {
            "start": seen.started,
            "cancel": seen.cancelled,
            "instruct": seen.instructed,
            "lookup": seen.looked_up,
        }[o]
        for o in others
    )
    return clean and observed == expect.keys


@dataclass
class Score:
    """How a part of the corpus fared."""

    name: str
    total: int = 0
    right: int = 0
    missed: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.right / self.total if self.total else 1.0

    def line(self) -> str:
        return f"{self.name}: {self.right}/{self.total} understood ({self.share:.1%})"


def report(scores: Iterable[Score]) -> str:
    """The printed report: each part's share, then what was missed and what was wrong."""
    lines: list[str] = []
    for score in scores:
        lines.append(score.line())
        lines.extend(f"  missed: {m}" for m in score.missed)
        lines.extend(f"  WRONG: {w}" for w in score.wrong)
    return "\n".join(lines)


def all_cases(names: Sequence[str] = ("tuning.txt", "heldout.txt")) -> dict[str, list[Case]]:
    return {name: parse(HERE / name) for name in names}

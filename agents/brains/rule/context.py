"""One turn as the intents see it: the reading, the workspace, the tasks' facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.brains import Action, Reply, Turn
from agents.brains.rule.reading import Reading, Workspace
from agents.brains.rule.references import Resolution, TaskFacts, resolve
from agents.brains.rule.sentences import join


@dataclass(frozen=True, slots=True)
class Context:
    """A turn, read. ``hint`` holds the words of an answer to a question the brain asked
    ("Dana's"), which narrow what the earlier request (``reading``) named."""

    turn: Turn
    workspace: Workspace
    reading: Reading
    facts: tuple[TaskFacts, ...]
    hint: tuple[str, ...] = ()

    @property
    def active(self) -> tuple[TaskFacts, ...]:
        return tuple(f for f in self.facts if f.active)

    def resolve(
        self,
        words: Sequence[str],
        facts: Sequence[TaskFacts] | None = None,
        *,
        excluding: Sequence[str] = (),
    ) -> Resolution:
        """The tasks *words* (and any answer's words) point at, among *facts*."""
        return resolve(
            (*words, *self.hint),
            self.facts if facts is None else facts,
            self.workspace,
            self.turn.transcript,
            excluding=excluding,
        )


@dataclass(frozen=True, slots=True)
class Ask(Reply):
    """A question back to the person: nothing is done until they answer."""


def which(facts: Sequence[TaskFacts], verb: str) -> Ask:
    """Ask which of *facts* is meant, naming them apart: "Dana's or Hana's?"."""
    names = distinguish(facts)
    kinds = {f.kind.label if f.kind else "task" for f in facts}
    noun = kinds.pop() if len(kinds) == 1 else "one"
    options = join(names[:6]).replace(" and ", " or ")
    if len(names) > 6:
        options = ", ".join(names[:6]) + f" or one of the {len(names) - 6} others"
    return Ask(f"Which {noun} should I {verb} — {options}?")


def distinguish(facts: Sequence[TaskFacts]) -> list[str]:
    """Names that tell *facts* apart, as short as possible."""
    firsts = [f.patients[0].name.split()[0] if len(f.patients) == 1 else "" for f in facts]
    if all(firsts) and len(set(firsts)) == len(firsts):
        return [f"{n}'s" for n in firsts]
    meds = [f.medicines[0].capitalize() if f.medicines else "" for f in facts]
    if all(meds) and len(set(meds)) == len(meds):
        return [f"the {m} one" for m in meds]
    kinds = [f.kind.label if f.kind else "" for f in facts]
    if all(kinds) and len(set(kinds)) == len(kinds):
        return [f"the {k}" for k in kinds]
    mixed = []
    for _fact, first, med, kind in zip(facts, firsts, meds, kinds, strict=True):
        noun = kind or "task"
        mixed.append(f"{first}'s {noun}" if first else f"the {med} {noun}" if med else "")
    if all(mixed) and len(set(mixed)) == len(mixed):
        return mixed
    return [f"“{f.task.title}”" for f in facts]


def nothing_for(missing: str, verb: str, *, any_running: bool) -> Reply:
    """The reply when what was named has no task: never a fallback to another's."""
    if not any_running:
        return Reply(f"There's no background work running, so there's nothing to {verb}.")
    return Reply(
        f"I don't have anything running for “{missing}”, so there's nothing to {verb}. "
        "Nothing else was touched."
    )


def first_action(*candidates: Action | None) -> Action | None:
    return next((c for c in candidates if c is not None), None)

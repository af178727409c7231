"""The rule brain: deterministic, offline, and fluent enough for the demo's requests.

It reads ordinary wording, not fixed sentences: the text is normalized (case,
punctuation, contractions, possessives), then each intent is recognised from keyword
and phrase signals, checked in an order that settles the usual collisions — "stop the
calls" is a cancellation, not an outreach; "how are the calls going?" is a status
question; "what's Evan's phone number?" is a lookup. Background tasks are found again
by matching the person's words against each task's title and subject.

As a sub-agent it works from its assignment (``Task.params``): call the tool, take new
instructions into account, finish with the tool's result — or, given several
patients, fan out to the team and fall back to doing the work itself when the depth
cap refuses.

The modules, from reading to replying: :mod:`.vocabulary` and :mod:`.text` read the
words; :mod:`.matching` and :mod:`.instructions` find what they name; :mod:`.intents`
(with :mod:`.new_work` and :mod:`.small_talk`) decides a turn's action; :mod:`.steps`
a sub-agent's next step; :mod:`.phrasing`, :mod:`.charts` and :mod:`.followups` write
what the person hears.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace

from agents.brains import Action, Outcome, Reply, Step, Turn, Work
from agents.brains.rule import followups, intents, phrasing, steps
from agents.brains.rule.charts import lookup_answer
from agents.brains.rule.context import Ask
from agents.brains.rule.lexicon import Lexicon
from agents.brains.rule.reading import Workspace
from agents.brains.rule.text import first_person_as
from agents.demo.lexicon import DEMO_LEXICON
from agents.demo.records import RECORDS_LOOKUP
from agents.models import Task
from agents.ownership import scoped
from agents.ports import PatientDirectory
from agents.tools import ToolResult

_WORKSPACES = 64
"""Workspaces whose reading indexes a brain keeps: bounded, least recently used dropped."""

__all__ = ["RuleBrain"]


class RuleBrain:
    """A deterministic :class:`~agents.brains.Brain` for the demo; no network.

    It reads the workspace's patients from *directory* to recognise names and the
    onboarding group. It never invents a task: status, instructions and cancellation
    only ever name tasks found in :attr:`Turn.tasks`.
    """

    def __init__(
        self,
        directory: PatientDirectory,
        *,
        lexicon: Lexicon | Mapping[str, Lexicon] = DEMO_LEXICON,
    ) -> None:
        """*lexicon* is what the brain knows of the work beyond its grammar: one for every
        workspace, or one per workspace id (others get none). A lexicon's kinds of work
        apply only where the team has their tools; other work is read against the
        team's agents and the turn's tools (:attr:`Turn.tools`)."""
        self._directory = directory
        self._lexicon = lexicon
        self._workspaces: OrderedDict[tuple[object, ...], Workspace] = OrderedDict()

    def _lexicon_for(self, workspace_id: str) -> Lexicon:
        if isinstance(self._lexicon, Lexicon):
            return self._lexicon
        return self._lexicon.get(workspace_id, Lexicon())

    async def workspace(self, turn: Turn) -> Workspace:
        """The reading index for *turn*'s workspace, rebuilt when its patients or team change."""
        workspace_id = turn.agent.workspace_id
        # A patient's conversation knows of no other patient: naming one is naming nobody.
        directory = scoped(self._directory, turn.patient_scope)
        patients = await directory.list_patients(workspace_id)
        key = (workspace_id, tuple(patients), turn.team)
        found = self._workspaces.get(key)
        if found is not None:
            self._workspaces.move_to_end(key)
            return found
        ordered = sorted(patients, key=lambda p: p.name)
        built = Workspace.build(self._lexicon_for(workspace_id), ordered, turn.team)
        self._workspaces[key] = built
        if len(self._workspaces) > _WORKSPACES:
            self._workspaces.popitem(last=False)
        return built

    async def respond(self, turn: Turn) -> Action:
        """Decide what to do about one user turn."""
        workspace = await self.workspace(turn)
        if turn.caller is not None and not turn.caller.verified:
            return intents.decide_for_caller(turn, workspace)
        scope = turn.patient_scope
        if scope:
            # A patient speaking of themselves: "my provider" is their own record's.
            patient = await self._directory.get_patient(turn.agent.workspace_id, scope)
            if patient is not None:
                turn = replace(turn, text=first_person_as(patient.name, turn.text))
        action = intents.decide(turn, workspace)
        # A question back is a plain reply on the wire; nothing is done until answered.
        return Reply(action.text) if isinstance(action, Ask) else action

    async def step(self, work: Work) -> Step:
        """A sub-agent's next step: acknowledge instructions, call the tool, finish."""
        return await steps.next_step(work, scoped(self._directory, work.patient_scope))

    def status_text(self, tasks: Sequence[Task]) -> str:
        """The live state of *tasks*, one sentence each."""
        return phrasing.status_text(tasks)

    def cancel_text(self, tasks: Sequence[Task]) -> str:
        """What cancelling *tasks* did, from their state now."""
        return phrasing.cancel_text(tasks)

    def instruct_text(self, task: Task) -> str:
        """The reply once new instructions were queued for *task*."""
        return phrasing.instruct_text(task)

    def tool_text(self, tool: str, result: ToolResult) -> str:
        """A reply from a quick tool's result: answers what was asked of a lookup."""
        if tool == RECORDS_LOOKUP:
            return lookup_answer(result.data, result.text)
        return result.text

    def progress_text(self, task: Task, progress: str) -> str:
        """The person hears a lone task's progress; a batch speaks once, in its roll-up."""
        return phrasing.progress_text(task, progress)

    def followup_text(self, outcomes: Sequence[Outcome], *, rollup: bool) -> str:
        """The unsolicited news when a task, or a whole batch, is done."""
        return followups.followup_text(outcomes, rollup=rollup)

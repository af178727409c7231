"""The one ownership check every path goes through (PROTOCOL.md, Delegation).

A task's owners are the agent that started it and the person of its conversation.
For anyone else it does not exist: callers turn ``False`` into the same
:class:`~agents.exceptions.NotFound` they raise for an id that never existed.

A principal may also be a **patient** (``Principal.patient_id``): of the workspace's
patient directory it sees and hears only that record. A conversation carries the scope
of whoever speaks in it (:attr:`~agents.conversation.ConversationRuntime.patient_scope`),
and every records path reads through it: the directory as its brain and tools see it
(:class:`ScopedDirectory`), the patient a tool call is about (:func:`may_call_about`),
and the tasks a patient may look at (:func:`may_access_task`). To a patient, another
patient's record is answered exactly as a record that does not exist.

Scopes: ``None`` is staff (the whole directory); a record's id is that record alone;
:data:`NOBODY` is a caller not yet verified, who sees no record at all.

A **caller** (``Principal.call``: a phone call through a bridge) is a patient whose
record is not known yet. Whatever they ask for themselves is read with the scope
:data:`NOBODY`; what they may hear of their own record they hear from the
conversation's agent, once it has verified them (:mod:`agents.verification`), in that
call alone (:attr:`~agents.conversation.ConversationRuntime.patient_scope`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.models import Chat, ChatKind, Conversation, Patient, Principal, Role, Task
from agents.ports import PatientDirectory

NOBODY = ""
"""The scope of a caller not yet verified: no record's id, so no record is theirs."""

NO_SUCH_PATIENT = "No patient matches that name or id."
"""What a patient outside the scope is answered with: what one that does not exist is."""

PATIENT_ARGS = ("patient_id",)
"""The arguments of a tool call that name the patient it is about (any tool: built-in,
HTTP or MCP, as workspace files declare them)."""


def principal_scope(principal: Principal) -> str | None:
    """The patient scope *principal*'s own reads have: its ``patient`` claim; for a
    caller, none (:data:`NOBODY`); staff's (``None``) otherwise."""
    if principal.patient_id is not None:
        return principal.patient_id
    return NOBODY if principal.call is not None else None


def task_in_scope(scope: str | None, task: Task) -> bool:
    """Whether *task* is about no patient, or one *scope* may see: its tool call's args."""
    if scope is None:
        return True
    args = task.params.get("args")
    return may_call_about(scope, args if isinstance(args, Mapping) else {})


def may_see_patient(scope: str | None, patient_id: str) -> bool:
    """Whether a principal or conversation of *scope* may see patient *patient_id*."""
    return scope is None or (scope != NOBODY and scope == patient_id)


def may_call_about(scope: str | None, args: Mapping[str, Any]) -> bool:
    """Whether a tool call with *args* is about no patient, or one *scope* may see.

    A call that names a patient by something other than an id (a name) is resolved by
    the tool through a :class:`ScopedDirectory`.
    """
    for key in PATIENT_ARGS:
        value = args.get(key)
        if value is not None and not may_see_patient(scope, str(value).strip()):
            return False
    return True


class ScopedDirectory:
    """A :class:`~agents.ports.PatientDirectory` as a principal of *scope* sees it:
    records outside the scope are not there. Read-only."""

    def __init__(self, directory: PatientDirectory, scope: str | None) -> None:
        self._directory = directory
        self.scope = scope

    async def list_patients(self, workspace_id: str) -> list[Patient]:
        if self.scope is None:
            return await self._directory.list_patients(workspace_id)
        found = await self.get_patient(workspace_id, self.scope)
        return [] if found is None else [found]

    async def get_patient(self, workspace_id: str, patient_id: str) -> Patient | None:
        if not may_see_patient(self.scope, patient_id):
            return None
        return await self._directory.get_patient(workspace_id, patient_id)

    async def save_patients(self, patients: Sequence[Patient]) -> None:
        raise PermissionError("a scoped directory is read-only")


def scoped(directory: PatientDirectory, scope: str | None) -> PatientDirectory:
    """*directory* as *scope* sees it (itself for staff)."""
    return directory if scope is None else ScopedDirectory(directory, scope)


def may_access_task(principal: Principal, task: Task) -> bool:
    """Whether *principal* may see, read, instruct or cancel *task*."""
    if principal.workspace_id != task.workspace_id:
        return False
    if principal.role is Role.AGENT:
        return principal.id == task.owner_agent_id
    person = principal.person_id
    if person is None or person != task.person_id:
        return False
    # A patient sees only the work about them (or about nobody): its tool call's args.
    return task_in_scope(principal_scope(principal), task)


def may_access_conversation(principal: Principal, conversation: Conversation) -> bool:
    """Whether *principal* is the conversation's person (or acts for them), or its agent."""
    if principal.workspace_id != conversation.workspace_id:
        return False
    if principal.role is Role.AGENT:
        return principal.id == conversation.agent_id
    person = principal.person_id
    return person is not None and person == conversation.person_id


def may_access_chat(
    principal: Principal, chat: Chat, *, task: Task | None, conversation: Conversation | None
) -> bool:
    """Whether *principal* may watch *chat*: its task's owners, or its conversation's."""
    if principal.workspace_id != chat.workspace_id:
        return False
    if chat.kind is ChatKind.TASK:
        return task is not None and task.id == chat.task_id and may_access_task(principal, task)
    return conversation is not None and may_access_conversation(principal, conversation)

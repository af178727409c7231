"""The one ownership check every path goes through (PROTOCOL.md, Delegation).

A task's owners are the agent that started it and the person of its conversation.
For anyone else it does not exist: callers turn ``False`` into the same
:class:`~agents.exceptions.NotFound` they raise for an id that never existed.
"""

from __future__ import annotations

from agents.models import Chat, ChatKind, Conversation, Principal, Role, Task


def may_access_task(principal: Principal, task: Task) -> bool:
    """Whether *principal* may see, read, instruct or cancel *task*."""
    if principal.workspace_id != task.workspace_id:
        return False
    if principal.role is Role.AGENT:
        return principal.id == task.owner_agent_id
    person = principal.person_id
    return person is not None and person == task.person_id


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

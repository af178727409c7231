"""The node's LLM brains: the one the environment configures, and a file's own.

``SWITCHBOARD_LLM_URL`` (with ``SWITCHBOARD_LLM_MODEL``, ``SWITCHBOARD_LLM_API_KEY``
and ``SWITCHBOARD_LLM_JSON``) gives every workspace the ``llm`` brain and, in demo
mode, puts the demo's agents on it. A workspace file's ``[brains.NAME]`` is built
by :func:`brain_factory`, its API key read from the environment variable it names —
never from the file, never logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace

from agents.brains import Brain
from agents.brains.llm import LLMBrain
from agents.brains.llm.client import ChatClient, ChatModel
from agents.ports import PatientDirectory
from agents.workspace_file import BrainSpec, WorkspaceSpec
from server.settings import Settings


def environment_brain(settings: Settings, directory: PatientDirectory) -> LLMBrain | None:
    """The ``llm`` brain of ``SWITCHBOARD_LLM_URL``, or ``None`` when it is unset."""
    if settings.llm_url is None:
        return None
    model = ChatModel(
        settings.llm_url,
        settings.llm_model,
        api_key=settings.llm_api_key,
        timeout=settings.llm_timeout,
        deadline=2 * settings.llm_timeout,
    )
    return LLMBrain(ChatClient(model), directory, json_mode=settings.llm_json)


def brain_factory(
    directory: PatientDirectory, environ: Mapping[str, str] = os.environ
) -> Callable[[BrainSpec], Brain]:
    """Builds a workspace file's ``[brains.NAME]`` (an OpenAI-compatible server)."""

    def build(spec: BrainSpec) -> Brain:
        key = environ.get(spec.api_key_env) if spec.api_key_env else None
        if spec.api_key_env and not key:
            raise LookupError("the brain's API key variable is not set")
        model = ChatModel(
            spec.base_url, spec.model, api_key=key, timeout=spec.timeout, deadline=2 * spec.timeout
        )
        return LLMBrain(ChatClient(model), directory, json_mode=spec.json_mode)

    return build


def on_brain(spec: WorkspaceSpec, brain: str) -> WorkspaceSpec:
    """*spec* with every agent thinking with *brain* (the demo on the LLM brain)."""
    return replace(spec, agents=tuple(replace(a, brain=brain) for a in spec.agents))

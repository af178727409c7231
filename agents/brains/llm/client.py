"""An OpenAI-compatible Chat Completions client: streamed, retried, never logging text.

It speaks the API that OpenAI, vLLM, Ollama and llama.cpp's server all serve
(``POST {base_url}/chat/completions`` with ``stream: true``), over httpx, and hands
back each streamed piece as it comes. Prompts and completions are PHI: nothing of a
request or an answer reaches a log line or an exception's text, only status codes
and exception types.

Faults: a connection refused, a timeout, 429 and 5xx are retried with exponential
backoff until the call's deadline; a stream cut midway is retried only if nothing of
it was handed on yet (what the person saw cannot be taken back), else it fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from opentelemetry import trace

from agents.exceptions import SwitchboardError
from agents.spans import start_span

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("switchboard.agents")

RETRY_FIRST_S = 0.25
RETRY_MAX_S = 4.0


class ModelError(SwitchboardError):
    """The model server could not give an answer in time (or gave a malformed one)."""

    code = "model_unavailable"


@dataclass(slots=True)
class ToolCall:
    """A tool call the model made: its arguments as the JSON text it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Completion:
    """A whole answer: its text and its tool calls, in order."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


OnText = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ChatModel:
    """Where a model is served and how long to wait for it.

    *timeout* bounds each read of the stream (a hang), *deadline* the whole call with
    its retries.
    """

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 30.0
    deadline: float = 60.0
    max_tokens: int = 400
    extra_body: Mapping[str, Any] = field(default_factory=dict)


class ChatClient:
    """Calls one :class:`ChatModel`; share it (it pools its connections)."""

    def __init__(self, model: ChatModel, *, transport: httpx.AsyncBaseTransport | None = None):
        self.model = model
        headers = {"Accept": "text/event-stream"}
        if model.api_key:
            headers["Authorization"] = f"Bearer {model.api_key}"
        self._http = httpx.AsyncClient(
            base_url=model.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(model.timeout, connect=min(5.0, model.timeout)),
            transport=transport,
            follow_redirects=False,
        )
        self.calls = 0
        self.retries = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        response_format: Mapping[str, Any] | None = None,
        on_text: OnText | None = None,
    ) -> Completion:
        """One completion, its text handed to *on_text* piece by piece as it streams.

        Raises :class:`ModelError` once the deadline passes without an answer.
        """
        body: dict[str, Any] = {
            "model": self.model.model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": self.model.max_tokens,
            **self.model.extra_body,
        }
        if tools:
            body["tools"] = list(tools)
            body["tool_choice"] = "auto"
        if response_format is not None:
            body["response_format"] = dict(response_format)
        self.calls += 1
        with start_span(
            _tracer,
            "chat.completions",
            attributes={"gen_ai.request.model": self.model.model},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await self._complete(body, on_text)
            except ModelError:
                span.set_attribute("error.type", "model_unavailable")
                raise

    async def _complete(self, body: Mapping[str, Any], on_text: OnText | None) -> Completion:
        backoff = RETRY_FIRST_S
        reason = "timeout"
        with anyio.move_on_after(self.model.deadline):
            while True:
                started = False

                async def handed_on(piece: str) -> None:
                    nonlocal started
                    started = True
                    if on_text is not None:
                        await on_text(piece)

                try:
                    return await self._stream(body, handed_on)
                except _Retry as retry:
                    reason = retry.reason
                except (httpx.TimeoutException, httpx.TransportError, anyio.EndOfStream) as exc:
                    reason = type(exc).__name__
                if started:
                    log.warning("model stream cut", extra={"error": reason})
                    raise ModelError("the model's answer was cut off")
                log.info("model call retried", extra={"error": reason})
                self.retries += 1
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
        log.warning("model call gave up", extra={"error": reason})
        raise ModelError("the model did not answer in time")

    async def _stream(self, body: Mapping[str, Any], on_text: OnText) -> Completion:
        async with self._http.stream("POST", "chat/completions", json=body) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retry(f"http_{response.status_code}")
            if response.status_code != 200:
                # A 4xx other than 429 will not get better by asking again.
                log.warning("model call refused", extra={"status": response.status_code})
                raise ModelError(f"the model server refused the call ({response.status_code})")
            return await _read_stream(_lines(response), on_text)


class _Retry(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        yield line


async def _read_stream(lines: AsyncIterator[str], on_text: OnText) -> Completion:
    """Read server-sent chunks until ``[DONE]`` (or the end of a non-streamed body)."""
    completion = Completion()
    calls: dict[int, ToolCall] = {}
    done = False
    async for raw in lines:
        if done:
            # Read to the end rather than stop: the response's iterators are left
            # exhausted, not to the garbage collector (a warning under Trio). Bounded by
            # the read timeout and the call's deadline.
            continue
        line = raw.strip()
        if not line or line.startswith(":"):
            continue
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise ModelError("the model server sent a malformed chunk") from None
        finished = _take_chunk(chunk, completion, calls)
        piece = _chunk_text(chunk)
        if piece:
            completion.text += piece
            await on_text(piece)
        if finished:
            done = True
    if not done:
        raise anyio.EndOfStream
    completion.tool_calls = [calls[i] for i in sorted(calls)]
    return completion


def _choice(chunk: Any) -> Mapping[str, Any]:
    if not isinstance(chunk, dict):
        return {}
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return {}
    return choices[0]


def _chunk_text(chunk: Any) -> str:
    delta = _choice(chunk).get("delta")
    if not isinstance(delta, dict):
        return ""
    content = delta.get("content")
    return content if isinstance(content, str) else ""


def _take_chunk(chunk: Any, completion: Completion, calls: dict[int, ToolCall]) -> bool:
    """Gather the chunk's tool-call pieces; whether it says the answer is complete."""
    choice = _choice(chunk)
    delta = choice.get("delta")
    if isinstance(delta, dict):
        for index, piece in enumerate(delta.get("tool_calls") or ()):
            if not isinstance(piece, dict):
                continue
            at = piece.get("index", index)
            call = calls.setdefault(at if isinstance(at, int) else index, ToolCall("", "", ""))
            if isinstance(piece.get("id"), str):
                call.id = piece["id"]
            function = piece.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call.name += function["name"]
                if isinstance(function.get("arguments"), str):
                    call.arguments += function["arguments"]
    return choice.get("finish_reason") is not None

"""An OpenAI-compatible server that answers from a script: faults at the model's door.

It stands in for a model only where a test injects what a real one does on a bad day
(429, 500, a hang, a malformed tool call, a stream cut midway) or pins an exact
answer to check the wiring around it. Run as a process, on loopback::

    python -m tests.scripted_model --port P

``POST /script`` queues answers, each taken by the next ``/v1/chat/completions``
call: ``{"status": 429}``, ``{"hang": 30}``, ``{"text": "…", "pieces": 4}``,
``{"tool": "delegate", "arguments": "{…}", "text": "…"}``, ``"every": 0.5`` seconds
between pieces, and ``"cut": 2`` to drop the connection after that many pieces. With
the script empty it answers ``"ok"``.
``GET /requests`` returns the request bodies received, in order; ``DELETE /script``
forgets both.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

from tests.processes import serving


def app() -> Any:
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    script: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []

    async def set_script(request: Request) -> Response:
        if request.method == "DELETE":
            script.clear()
            received.clear()
            return JSONResponse({"queued": 0})
        script.extend(await request.json())
        return JSONResponse({"queued": len(script)})

    async def requests(request: Request) -> Response:
        return JSONResponse(received)

    async def completions(request: Request) -> Response:
        body = await request.json()
        received.append(body)
        answer = script.pop(0) if script else {"text": "ok"}
        if "status" in answer:
            return JSONResponse({"error": {"message": "scripted"}}, status_code=answer["status"])
        if "hang" in answer:
            await anyio.sleep(float(answer["hang"]))
        return StreamingResponse(_chunks(answer), media_type="text/event-stream")

    async def _chunks(answer: dict[str, Any]) -> AsyncIterator[str]:
        text = str(answer.get("text", ""))
        count = max(1, int(answer.get("pieces", 1)))
        size = max(1, -(-len(text) // count))
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        cut = answer.get("cut")
        for n, piece in enumerate(pieces):
            if cut is not None and n == cut:
                raise ConnectionError("scripted cut")
            yield _sse({"delta": {"content": piece}, "finish_reason": None})
            await anyio.sleep(float(answer.get("every", 0.01)))
        if "tool" in answer:
            arguments = answer.get("arguments", "{}")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            half = len(arguments) // 2
            call = {"index": 0, "id": "call_1", "type": "function"}
            yield _sse(
                {
                    "delta": {
                        "tool_calls": [
                            {
                                **call,
                                "function": {"name": answer["tool"], "arguments": arguments[:half]},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            )
            yield _sse(
                {
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]
                    },
                    "finish_reason": None,
                }
            )
        if cut is not None and cut >= len(pieces):
            raise ConnectionError("scripted cut")
        yield _sse({"delta": {}, "finish_reason": "tool_calls" if "tool" in answer else "stop"})
        yield "data: [DONE]\n\n"

    def _sse(choice: dict[str, Any]) -> str:
        chunk = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, **choice}]}
        return f"data: {json.dumps(chunk)}\n\n"

    return Starlette(
        routes=[
            Route("/script", set_script, methods=["POST", "DELETE"]),
            Route("/requests", requests),
            Route("/v1/chat/completions", completions, methods=["POST"]),
        ]
    )


def running() -> AbstractContextManager[str]:
    """Run the scripted server in a process on a free port; yields its base URL."""
    return serving("tests.scripted_model", ready="/requests", what="the scripted model server")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvicorn.run(app(), host="127.0.0.1", port=args.port, log_level="critical")


if __name__ == "__main__":
    main()

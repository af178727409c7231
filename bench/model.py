"""A model server that answers at once, so that what P13 times is the brain, not a model.

``python -m bench.model --port P`` serves ``POST /v1/chat/completions`` with
``stream: true`` the way OpenAI-compatible servers do (server-sent ``chat.completion.chunk``
events, then ``[DONE]``): a short reply in a few pieces, the first one as soon as the
request is read. The bench times the same request sent straight to it, so the model's
own share of the latency can be taken out.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

PIECES = ("Hello", " — how", " can I", " help?")


def _chunk(delta: dict[str, str], finish: str | None = None) -> str:
    chunk = {
        "id": "bench",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


async def completions(request: Request) -> Response:
    await request.body()

    async def stream() -> AsyncIterator[str]:
        for piece in PIECES:
            yield _chunk({"content": piece})
        yield _chunk({}, "stop")
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def app() -> Starlette:
    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.model")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

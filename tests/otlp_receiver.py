"""An OTLP/HTTP trace receiver, as a collector would be: what the nodes export, decoded.

``python -m tests.otlp_receiver --port P`` takes ``POST /v1/traces`` (protobuf
``ExportTraceServiceRequest``, the OpenTelemetry exporter's default) and answers
``GET /spans`` with every span received: name, ids in hex, kind, attributes and the
``service.instance.id`` of the process that sent it.
"""

from __future__ import annotations

import argparse
import gzip
from contextlib import AbstractContextManager
from typing import Any

from tests.processes import serving


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def app() -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    spans: list[dict[str, Any]] = []

    async def traces(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "kind": int(span.kind),
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "events": [e.name for e in span.events],
                            "node": resource.get("service.instance.id"),
                        }
                    )
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    async def received(request: Request) -> Response:
        return JSONResponse(spans)

    return Starlette(
        routes=[
            Route("/v1/traces", traces, methods=["POST"]),
            Route("/spans", received, methods=["GET"]),
        ]
    )


def running() -> AbstractContextManager[str]:
    """The receiver in its own process on a free port; yields its base URL."""
    return serving("tests.otlp_receiver", ready="/spans", what="the OTLP receiver")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app(), host="127.0.0.1", port=args.port, log_level="critical")


if __name__ == "__main__":
    main()

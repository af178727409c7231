"""Traces through OpenTelemetry, exported only when configured.

The runtime names its spans with the OpenTelemetry API (a no-op until a provider is
set): ``switchboard.say`` on the node whose socket took the words, ``switchboard.relay``
on the home that ran them for another node (the trace context travels in the relayed
command), ``switchboard.turn`` for the primary agent's answer, ``switchboard.task`` for
each background task it started (and theirs), ``chat.completions`` for each model call.
Attributes are ids, agent names from the workspace, states and counts: never words, and
no exception is recorded (its text may quote a record).

:func:`configure` sets the provider when an OTLP endpoint is configured the standard way
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, HTTP/protobuf,
with the other ``OTEL_*`` settings the exporter reads); it needs the ``tracing`` extra
(``pip install 'switchboard[tracing]'``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether traces are to be exported (an OTLP endpoint is set)."""
    return any(environ.get(name) for name in ENDPOINT_VARIABLES)


@contextmanager
def exporting(node_id: str, environ: Mapping[str, str] = os.environ) -> Iterator[bool]:
    """Export this process's spans while the block runs, if configured; flushes at the
    end. Yields whether it exports."""
    if not configured(environ):
        yield False
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("tracing is configured but not installed: pip install 'switchboard[tracing]'")
        yield False
        return
    resource = Resource.create({"service.name": "switchboard", "service.instance.id": node_id})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("exporting traces")
    try:
        yield True
    finally:
        provider.shutdown()

"""Spans cost nothing until a tracer provider is set (agents.spans).

With a provider set the spans are the API's own: ``tests/e2e/test_tracing.py`` checks
them exported from a server (a process sets its provider once, so not here).
"""

from __future__ import annotations

from opentelemetry import context, trace

from agents.spans import start_span


def test_without_a_provider_a_span_is_the_apis_non_recording_one_and_attaches_nothing() -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    tracer = trace.get_tracer("switchboard.test")
    before = context.get_current()
    with start_span(tracer, "switchboard.say", attributes={"switchboard.conversation": "c"}) as s:
        assert not s.is_recording()
        assert not s.get_span_context().is_valid
        s.set_attribute("switchboard.state", "done")  # allowed, and recorded nowhere
        assert context.get_current() == before
    # As the proxy's own span would be: the same answers.
    with tracer.start_as_current_span("switchboard.say") as proxied:
        assert not proxied.is_recording()
        assert not proxied.get_span_context().is_valid
    # Reusable: blocks one inside another, one after another.
    with start_span(tracer, "a"), start_span(tracer, "b") as inner:
        assert inner is trace.INVALID_SPAN

"""Traces of sessions in a tracing backend (Jaeger, Grafana Tempo, Langfuse, Phoenix...).

Sessions emit OpenTelemetry spans on the GenAI semantic conventions to the global tracer
provider (or ``tracer_provider=``) whenever an SDK is configured; the application chooses the
exporter, as with any instrumented library. In a notebook one line does it::

    from realtime_widget import tracing
    tracing.otlp("http://localhost:4318")        # or OTEL_EXPORTER_OTLP_ENDPOINT

Saved logs and runs export the same spans with their own times: ``EventLog.to_otel()``,
``Runs.to_otel()``. See docs/tracing.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._extras import require
from ._otel import CAPTURE_ENV

__all__ = ["CAPTURE_ENV", "otlp"]


def otlp(
    endpoint: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    service_name: str = "realtime-widget",
    set_global: bool = True,
    capture_content: bool | None = None,
    batch: bool = True,
) -> Any:
    """Send the sessions' traces over OTLP/HTTP, in one line.

    Builds a ``TracerProvider`` (opentelemetry-sdk) with a batch span processor and the OTLP/HTTP
    exporter (opentelemetry-exporter-otlp-proto-http), for a collector or a backend that takes
    OTLP (Jaeger, Grafana Tempo, Langfuse, Phoenix...). Needs the ``otel`` extra
    (``pip install "realtime-widget[otel]"``).

    Args:
        endpoint: The collector's base URL (``http://localhost:4318``; ``/v1/traces`` is added)
            or a full ``.../v1/traces`` URL. None uses the exporter's own environment
            (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``, else
            ``http://localhost:4318``).
        headers: HTTP headers sent with each export, such as a backend's key; they go to the
            exporter only, never into a span.
        service_name: The ``service.name`` of the traces' resource.
        set_global: Make it the global tracer provider, which sessions trace to by default
            (only the first such call in a process takes effect, as OpenTelemetry allows one).
        capture_content: True turns on message text and transcripts in the spans for this
            process, False turns them off (it sets
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``); None leaves the setting as
            it is.
        batch: Export in batches in the background (True); False exports each span as it ends
            (a ``SimpleSpanProcessor``: slower, for debugging).

    Returns:
        The ``TracerProvider``; ``provider.force_flush()`` sends what is buffered.

    Raises:
        ImportError: The ``otel`` extra is not installed (the message says what to install).

    Example:
        >>> from realtime_widget import RealtimeSession, tracing
        >>> provider = tracing.otlp("http://localhost:4318")
        >>> async with RealtimeSession() as s:
        ...     reply = await s.ask("Hello!")
        >>> provider.force_flush()
        True
    """
    sdk_trace = require("opentelemetry.sdk.trace", "otel", "tracing.otlp()", "opentelemetry-sdk")
    export = require(
        "opentelemetry.sdk.trace.export", "otel", "tracing.otlp()", "opentelemetry-sdk"
    )
    resources = require(
        "opentelemetry.sdk.resources", "otel", "tracing.otlp()", "opentelemetry-sdk"
    )
    http = require(
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "otel",
        "tracing.otlp()",
        "opentelemetry-exporter-otlp-proto-http",
    )
    trace = require("opentelemetry.trace", "otel", "tracing.otlp()", "opentelemetry-api")
    url = None
    if endpoint:
        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
    exporter = http.OTLPSpanExporter(endpoint=url, headers=dict(headers) if headers else None)
    provider = sdk_trace.TracerProvider(
        resource=resources.Resource.create({"service.name": service_name})
    )
    processor = (
        export.BatchSpanProcessor(exporter) if batch else export.SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    if capture_content is not None:
        os.environ[CAPTURE_ENV] = "true" if capture_content else "false"
    if set_global:
        trace.set_tracer_provider(provider)
    return provider

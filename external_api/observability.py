"""Metrics and structured logs: the one place workspace-toolkit defines them.

Metrics live in prometheus_client's default registry (what ``GET /metrics`` serves).
``metrics_counter_inc(name, labels)`` keeps the call sites of the older workspace
client working; named metrics used across modules are defined here once.
Logs go through structlog: JSON lines in staging/prod, readable console lines in dev.
Tracing is optional: :func:`start_span` is a no-op unless the ``otel`` extra is installed
and a tracer provider is configured (:func:`configure_tracing` does that when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import structlog
from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BUILD_INFO",
    "FUNCTION_CALLS",
    "FUNCTION_DURATION",
    "HTTP_IN_PROGRESS",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "UPSTREAM_LATENCY",
    "UPSTREAM_REQUESTS",
    "configure_logging",
    "configure_tracing",
    "get_logger",
    "labelled",
    "metrics_counter_inc",
    "start_span",
]

UPSTREAM_REQUESTS = Counter(
    "workspace_upstream_requests_total",
    "Calls to upstream data APIs, by source, endpoint and outcome.",
    ["source", "endpoint", "outcome"],
)
UPSTREAM_LATENCY = Histogram(
    "workspace_upstream_request_duration_seconds",
    "Latency of upstream data API calls (all attempts, retries included).",
    ["source", "endpoint"],
)


# The function server's RED metrics. ``route`` is always the route template
# (``/functions/{name}``), never the raw path, so label cardinality stays bounded.
HTTP_REQUESTS = Counter(
    "workspace_http_requests_total",
    "HTTP requests served by the function server, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "workspace_http_request_duration_seconds",
    "Latency of function server requests, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HTTP_IN_PROGRESS = Gauge(
    "workspace_http_requests_in_progress",
    "Function server requests being handled right now, by route template and method.",
    ["route", "method"],
)
FUNCTION_CALLS = Counter(
    "workspace_function_calls_total",
    "Calls of registered functions, by function name and outcome (ok or the error type).",
    ["function", "outcome"],
)
FUNCTION_DURATION = Histogram(
    "workspace_function_call_duration_seconds",
    "Duration of registered function calls, by function name.",
    ["function"],
)
BUILD_INFO = Gauge(
    "workspace_build_info",
    "Always 1; the label carries the running workspace-toolkit version.",
    ["version"],
)


@functools.lru_cache(maxsize=4096)
def labelled(metric: Counter | Gauge | Histogram, *values: str) -> Any:
    """Return ``metric.labels(*values)``, cached.

    The label lookup (validation, locking) is a measurable share of every request on
    the function server; label values there are bounded (route templates, methods,
    statuses, registered function names), so the children are kept.
    """
    return metric.labels(*values)


_counters: dict[str, tuple[Counter, frozenset[str]]] = {}
_counters_lock = threading.Lock()


def metrics_counter_inc(
    name: str, labels: Mapping[str, str] | None = None, amount: float = 1
) -> None:
    """Increment the counter ``name`` (created on first use) with ``labels``.

    The first call fixes the counter's label names; a later call with other label
    names raises ``ValueError``. ``name`` must be a valid Prometheus metric name.
    """
    labels = dict(labels or {})
    with _counters_lock:
        if name not in _counters:
            counter = Counter(name, f"Counter {name} (metrics_counter_inc).", sorted(labels))
            _counters[name] = (counter, frozenset(labels))
        counter, expected = _counters[name]
    if set(labels) != expected:
        raise ValueError(
            f"counter {name!r} has labels {sorted(expected)}, got {sorted(labels)}: "
            "use the same label names on every call."
        )
    (counter.labels(**labels) if labels else counter).inc(amount)


def configure_logging(
    renderer: Literal["json", "console"] = "console", level: int | str = logging.INFO
) -> None:
    """Configure structlog to render ``renderer`` lines to stderr.

    Each line is written with a single ``write`` call, so the lines of several worker
    processes sharing one stderr pipe never interleave mid-line.
    """
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    final: Any = (
        structlog.processors.JSONRenderer()
        if renderer == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, final],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **bound: Any) -> Any:
    """Return a structlog logger named ``name`` with ``bound`` key/values.

    The logger is lazy: each call resolves the current structlog configuration, so a
    module-level logger made at import time still follows a later :func:`configure_logging`.
    """
    return _LazyLogger(name, {"logger": name, **bound})


class _LazyLogger:
    """A bound structlog logger resolved on every use (``bind`` stays lazy too)."""

    __slots__ = ("_bound", "_name")

    def __init__(self, name: str, bound: dict[str, Any]) -> None:
        self._name = name
        self._bound = bound

    def bind(self, **values: Any) -> _LazyLogger:
        return _LazyLogger(self._name, {**self._bound, **values})

    def __getattr__(self, method: str) -> Any:
        return getattr(structlog.get_logger(self._name).bind(**self._bound), method)


_TRACER_NAME = "external_api"


def configure_tracing(exporter: Any = None, service_name: str = "workspace-toolkit") -> bool:
    """Install an OpenTelemetry tracer provider; return whether tracing is now on.

    With ``exporter`` (any SDK ``SpanExporter``) spans go there synchronously (tests use
    the SDK's in-memory exporter). Without it, spans are batched to the OTLP/HTTP
    exporter, which reads ``OTEL_EXPORTER_OTLP_ENDPOINT`` and the other standard
    ``OTEL_*`` variables; when that variable is unset, or the ``otel`` extra is not
    installed, nothing is configured and :func:`start_span` stays a no-op.
    """
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _forget_tracer()  # look the provider up again on the next span
    return True


_UNKNOWN: Any = object()
_tracer: Any = _UNKNOWN


def _find_tracer() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return trace.get_tracer(_TRACER_NAME, tracer_provider=provider)


def _forget_tracer() -> None:
    global _tracer
    _tracer = _UNKNOWN


def _active_tracer() -> Any:
    """The tracer of the installed SDK provider, or ``None``; looked up once per provider."""
    global _tracer
    if _tracer is _UNKNOWN:
        _tracer = _find_tracer()
    return _tracer


_NO_SPAN: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def start_span(
    name: str,
    kind: Literal["server", "client", "internal"] = "internal",
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """Run the ``with`` body in an OpenTelemetry span (``None`` when tracing is off).

    Tracing is on once :func:`configure_tracing` installed a provider (or the
    application installed its own before the first span). The span records an escaping
    exception and sets its status to error. Without the ``otel`` extra or a provider the
    context manager yields ``None`` and costs next to nothing (no generator, no import).
    """
    tracer = _active_tracer()
    if tracer is None:
        return _NO_SPAN
    return _span(tracer, name, kind, attributes)


@contextlib.contextmanager
def _span(
    tracer: Any,
    name: str,
    kind: Literal["server", "client", "internal"],
    attributes: Mapping[str, str | int | float | bool] | None,
) -> Iterator[Any]:
    from opentelemetry.trace import SpanKind

    span_kind = {
        "server": SpanKind.SERVER,
        "client": SpanKind.CLIENT,
        "internal": SpanKind.INTERNAL,
    }[kind]
    with tracer.start_as_current_span(
        name, kind=span_kind, attributes=dict(attributes or {})
    ) as span:
        yield span

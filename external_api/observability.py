"""Metrics and structured logs: the one place workspace-toolkit defines them.

Metrics live in prometheus_client's default registry (what ``GET /metrics`` serves).
``metrics_counter_inc(name, labels)`` keeps the call sites of the older workspace
client working; named metrics used across modules are defined here once.
Logs go through structlog: JSON lines in staging/prod, readable console lines in dev.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any, Literal

import structlog
from prometheus_client import Counter, Histogram

__all__ = [
    "UPSTREAM_LATENCY",
    "UPSTREAM_REQUESTS",
    "configure_logging",
    "get_logger",
    "metrics_counter_inc",
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
    """Configure structlog (and stdlib logging) to render ``renderer`` lines to stderr."""
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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **bound: Any) -> Any:
    """Return a structlog logger named ``name`` with ``bound`` key/values."""
    return structlog.get_logger(name).bind(logger=name, **bound)

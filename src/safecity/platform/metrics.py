"""Prometheus metrics: one registry for the whole process, served at ``GET /metrics``.

Other areas add their own metrics through :func:`counter`, :func:`gauge` and
:func:`histogram`, which return the existing metric when called twice with the same name
(modules may be imported more than once in tests)::

    from safecity.platform import metrics
    DEAD_LETTERS = metrics.counter(
        "safecity_dead_letters_total", "Events moved to the dead-letter table", ["type"]
    )
    DEAD_LETTERS.labels(type=envelope.type).inc()

HTTP metrics are labelled by route *template* (``/api/orgs/{org_id}``), never the raw
path, so the number of series stays bounded. With several worker processes set
``PROMETHEUS_MULTIPROC_DIR`` (see docs/operations.md); :func:`render` then aggregates
every process's samples.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)
"""The registry ``/metrics`` serves. Register SafeCity metrics here, not in the default one."""

CONTENT_TYPE = CONTENT_TYPE_LATEST

_lock = threading.Lock()
_metrics: dict[str, Any] = {}

M = TypeVar("M", Counter, Gauge, Histogram)


def _get_or_create(kind: type[M], name: str, doc: str, labels: Sequence[str], **kw: Any) -> M:
    with _lock:
        existing = _metrics.get(name)
        if existing is not None:
            if not isinstance(existing, kind):
                raise ValueError(f"metric {name!r} already registered as {type(existing)}")
            return existing
        metric = kind(name, doc, labelnames=tuple(labels), registry=REGISTRY, **kw)
        _metrics[name] = metric
        return metric


def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    """A counter in SafeCity's registry (created once; later calls return the same one)."""
    return _get_or_create(Counter, name, doc, labels)


def gauge(name: str, doc: str, labels: Sequence[str] = (), *, mode: str = "livesum") -> Gauge:
    """A gauge; ``mode`` says how several processes combine (prometheus multiprocess mode)."""
    return _get_or_create(Gauge, name, doc, labels, multiprocess_mode=mode)


def histogram(
    name: str, doc: str, labels: Sequence[str] = (), *, buckets: Sequence[float] | None = None
) -> Histogram:
    """A histogram; default buckets suit request latencies in seconds."""
    kw: dict[str, Any] = {"buckets": tuple(buckets)} if buckets is not None else {}
    return _get_or_create(Histogram, name, doc, labels, **kw)


HTTP_REQUESTS = counter(
    "safecity_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = histogram(
    "safecity_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_FLIGHT = gauge(
    "safecity_http_requests_in_flight", "HTTP requests being answered now.", mode="livesum"
)


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_LATENCY.labels(method=method, route=route).observe(seconds)


def render() -> bytes:
    """The Prometheus text exposition of every SafeCity metric (all processes if multiproc)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest(REGISTRY))

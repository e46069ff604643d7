"""Prometheus metrics of one application (``GET /metrics``).

- ``opdash_http_requests_total{method,route,status}`` and
  ``opdash_http_request_duration_seconds{method,route}`` (histogram), observed by
  ``core.middleware.RequestContextMiddleware`` for every request; ``route`` is the route
  template (``/internal/tenants/{tenant_id}``), ``unmatched`` for paths no route serves, so the
  label set stays bounded.
- At scrape time: the read cache's hits, misses and errors and the verified-token cache size
  (this process), and from the database commands by type and status, the queue backlog
  (pending, running, oldest due pending age, dead letters) and the last usage aggregation
  (time, duration, rows written, success).

Processes: each server worker counts its own requests. With ``--workers N`` set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by the workers (prometheus_client's
multiprocess mode): request counters and histograms are then summed over every worker at
scrape; cache counters stay those of the worker that answers. The database figures are the
same whichever worker answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from alquimista_ops.observability import queries

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class HttpMetrics:
    """Request counters and latency histograms of one application."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "opdash_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "opdash_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        label = route or "unmatched"
        self.requests.labels(method, label, str(status)).inc()
        self.latency.labels(method, label).observe(seconds)


class DatabaseCollector(Collector):
    """Figures read at scrape time: cache statistics of this process and database counts."""

    def __init__(self, runtime: Any, backlog: Callable[[Any], Any]) -> None:
        self.runtime = runtime
        self.backlog = backlog

    def collect(self) -> Iterable[Metric]:
        stats = self.runtime.cache.stats
        cache = CounterMetricFamily(
            "opdash_cache_operations",
            "Read-cache look-ups of this process by result (hit, miss, error)",
            labels=["result", "backend"],
        )
        backend = self.runtime.cache.backend_name
        cache.add_metric(["hit", backend], stats.get("hits", 0))
        cache.add_metric(["miss", backend], stats.get("misses", 0))
        cache.add_metric(["error", backend], stats.get("errors", 0))
        yield cache
        tokens = GaugeMetricFamily(
            "opdash_verified_tokens_cached", "Verified tokens remembered by this process"
        )
        tokens.add_metric([], len(self.runtime.verifier.verified))
        yield tokens
        up = GaugeMetricFamily(
            "opdash_metrics_database_up", "1 when the database figures below could be read"
        )
        try:
            families = list(self._database_families(self.runtime.engine))
        except Exception as exc:  # the scrape still answers with what the process knows
            log.warning("metrics: database figures unavailable", extra={"error": repr(exc)})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _database_families(self, engine: Engine) -> Iterable[Metric]:
        with engine.connect() as conn:
            by_status = queries.commands_by_type_and_status(conn)
            backlog = self.backlog(conn)
            last = queries.last_aggregation(conn)
            conn.rollback()
        commands = GaugeMetricFamily(
            "opdash_commands", "Operational commands by type and status", labels=["type", "status"]
        )
        for command_type, status, count in by_status:
            commands.add_metric([command_type, status], count)
        yield commands
        for name, doc, value in (
            ("opdash_queue_pending", "Commands waiting to run", backlog.pending),
            ("opdash_queue_running", "Commands running", backlog.running),
            (
                "opdash_queue_dead_letters",
                "Commands failed after max attempts",
                backlog.dead_letters,
            ),
            (
                "opdash_queue_oldest_pending_age_seconds",
                "Age of the oldest due pending command (0 when none)",
                backlog.oldest_pending_age_seconds or 0.0,
            ),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
        if last is None:
            return  # never ran: the aggregation series are absent
        if last.finished_at is not None:
            gauge = GaugeMetricFamily(
                "opdash_aggregation_last_run_timestamp_seconds",
                "When the last usage aggregation finished (Unix time)",
            )
            gauge.add_metric([], last.finished_at.timestamp())
            yield gauge
        if last.duration_seconds is not None:
            gauge = GaugeMetricFamily(
                "opdash_aggregation_last_duration_seconds", "Duration of the last usage aggregation"
            )
            gauge.add_metric([], last.duration_seconds)
            yield gauge
        if last.rows is not None:
            gauge = GaugeMetricFamily(
                "opdash_aggregation_last_rows", "Daily rows written by the last usage aggregation"
            )
            gauge.add_metric([], last.rows)
            yield gauge
        if last.success is not None:
            gauge = GaugeMetricFamily(
                "opdash_aggregation_last_success", "1 when the last usage aggregation succeeded"
            )
            gauge.add_metric([], 1 if last.success else 0)
            yield gauge


def render(http: HttpMetrics, database: DatabaseCollector) -> bytes:
    """The text exposition: request metrics (of every worker in multiprocess mode) followed
    by the scrape-time figures."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Forward(http.registry))
    registry.register(database)
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()

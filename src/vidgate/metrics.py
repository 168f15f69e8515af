"""The process's own Prometheus metrics (prometheus-client, its default registry):
what this process did, lost with it when it ends.

What belongs to the cluster (jobs that ended, jobs in flight, queues, breakers) is not
counted here but read from PostgreSQL when scraped (services/metrics.py), so every API
process reports the same numbers whichever process did the work or crashed.

Labels are bounded by configuration, never by clients: route templates (not paths),
methods, status codes, deployment names, vidgate's own error codes and outcomes.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator

import structlog
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = structlog.get_logger("vidgate.metrics")

# Status reads take about a millisecond; uploads and downloads far longer.
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

# What a request that matched no route is counted as (404s of every shape, requests
# refused at the edge before routing): one series, whatever the path.
UNMATCHED = "<unmatched>"

UPSTREAM_DURATION = Histogram(
    "vidgate_upstream_request_duration_seconds",
    "Time of a provider call (submit, status, fetch, cancel), by deployment and operation,"
    " failures included.",
    ("deployment", "operation"),
    buckets=_UPSTREAM_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "vidgate_upstream_errors",
    "Provider calls that failed, by deployment, operation and vidgate's error code.",
    ("deployment", "operation", "code"),
)
WEBHOOK_DELIVERIES = Counter(
    "vidgate_webhook_deliveries",
    "Webhook delivery attempts made by this process, by kind (request: a job's"
    " webhook_url; endpoint: a project's webhook endpoint) and outcome.",
    ("kind", "outcome"),
)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Series:
    __slots__ = ("buckets", "labels", "seconds", "sent")

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.buckets = [0] * (len(_HTTP_BUCKETS) + 1)  # the last one: +Inf
        self.seconds = 0.0
        self.sent = 0


class HttpRecorder(Collector):
    """HTTP latency and bytes by route, counted in plain Python and turned into
    metric families when scraped.

    Every request is counted here (bench B1 measures status reads at thousands a
    second): prometheus-client's ``Histogram`` took a lock per bucket, sum and counter
    on every observation, and ``labels()`` a lookup of its own; this is one dict lookup,
    one bisect and three additions. Requests are observed on the event loop's thread
    and scraped on it (``/metrics`` is served by the same loop), so nothing races.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], _Series] = {}

    def observe(self, route: str, method: str, status: int, seconds: float, sent: int) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            # The parser takes methods beyond these; they share one label.
            label = method if method in _METHODS else "OTHER"
            series = self._series[key] = _Series((route, label, str(status)))
        series.buckets[bisect.bisect_left(_HTTP_BUCKETS, seconds)] += 1
        series.seconds += seconds
        series.sent += sent

    def collect(self) -> Iterator[Metric]:
        duration = HistogramMetricFamily(
            "vidgate_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status.",
            labels=("route", "method", "status"),
        )
        served = CounterMetricFamily(
            "vidgate_http_response_bytes",
            "Response body bytes sent, by route template.",
            labels=("route",),
        )
        by_route: dict[str, int] = {}
        for series in list(self._series.values()):
            bounds = [*(f"{b:g}" for b in _HTTP_BUCKETS), "+Inf"]
            duration.add_metric(
                list(series.labels),
                list(zip(bounds, itertools.accumulate(series.buckets), strict=True)),
                series.seconds,
            )
            route = series.labels[0]
            by_route[route] = by_route.get(route, 0) + series.sent
        for route, sent in sorted(by_route.items()):
            served.add_metric([route], sent)
        yield duration
        yield served


# The process's one recorder of HTTP requests (the API's edge observes into it).
HTTP = HttpRecorder()
REGISTRY.register(HTTP)


def serve_process_metrics(host: str, port: int) -> None:
    """This process's metrics at ``http://host:port/metrics``, from a thread of
    prometheus-client's (``vidgate worker --metrics-port``): a worker has no HTTP
    server of its own, and a scrape must not wait on its event loop."""
    start_http_server(port, addr=host)
    log.info("metrics.listening", url=f"http://{host}:{port}/metrics")

"""``/metrics``: the process's own metrics (``vidgate/metrics.py``) and the cluster's,
read from PostgreSQL when scraped.

The cluster's numbers are one round trip (db/cluster_metrics.py), cached for
``metrics_cache_s``: any number of scrapes (several Prometheus servers, several API
processes behind one target) costs the database one read per interval, and concurrent
scrapes share the read in flight. Every API process reports the same numbers for the
same moment, without a label of its own, so ``max by (...)`` across replicas dedupes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.db.cluster_metrics import ClusterSnapshot, snapshot
from vidgate.db.health import DatabaseHealth

log = structlog.get_logger("vidgate.metrics")

BREAKER_STATES = ("closed", "open")


class _ClusterCollector(Collector):
    """The last snapshot as metric families (prometheus-client calls ``collect``
    synchronously, so the read happens before, in ``MetricsService.exposition``)."""

    def __init__(self, deployments: Iterable[str]) -> None:
        self.deployments = sorted(deployments)
        self.snapshot: ClusterSnapshot | None = None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "vidgate_cluster_metrics_up",
            "1 when the cluster's metrics below were read from the database, 0 when the"
            " last read failed (they are left out then).",
        )
        snap = self.snapshot
        up.add_metric([], 0 if snap is None else 1)
        yield up
        if snap is None:
            return
        ended = CounterMetricFamily(
            "vidgate_jobs",
            "Jobs that reached each final state, by state and model (all processes).",
            labels=("state", "model"),
        )
        for (state, model), n in sorted(snap.ended.items()):
            ended.add_metric([state, model], n)
        yield ended
        inflight = GaugeMetricFamily(
            "vidgate_jobs_in_flight", "Jobs in each active state now.", labels=("state",)
        )
        for state, n in sorted(snap.inflight.items()):
            inflight.add_metric([state], n)
        yield inflight
        depth = GaugeMetricFamily(
            "vidgate_queue_depth",
            "Work due now per queue: procrastinate's step queues (jobs, media, webhooks),"
            " jobs to submit, waiting jobs to poll, webhook endpoint deliveries.",
            labels=("queue",),
        )
        age = GaugeMetricFamily(
            "vidgate_queue_oldest_age_seconds",
            "How long the oldest work due in each queue has been due (0 when none).",
            labels=("queue",),
        )
        for queue, stat in sorted(snap.queues.items()):
            depth.add_metric([queue], stat.depth)
            age.add_metric([queue], stat.oldest_age_s)
        yield depth
        yield age
        breaker = GaugeMetricFamily(
            "vidgate_breaker_state",
            "Each deployment's circuit breaker: 1 for the state it is in.",
            labels=("deployment", "state"),
        )
        failures = GaugeMetricFamily(
            "vidgate_deployment_consecutive_failures",
            "Failures in a row of each deployment (a breaker opens at a threshold).",
            labels=("deployment",),
        )
        for name in sorted({*self.deployments, *snap.breakers}):
            record = snap.breakers.get(name)
            current = record.state if record else "closed"
            for state in BREAKER_STATES:
                breaker.add_metric([name, state], 1 if state == current else 0)
            failures.add_metric([name], record.consecutive_failures if record else 0)
        yield breaker
        yield failures


class MetricsService:
    def __init__(
        self,
        db: AsyncEngine,
        health: DatabaseHealth,
        *,
        deployments: Iterable[str],
        cache_s: float,
    ) -> None:
        self._db = db
        self._health = health
        self._cache_s = cache_s
        self._collector = _ClusterCollector(deployments)
        self._cluster = CollectorRegistry(auto_describe=False)
        self._cluster.register(self._collector)
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def exposition(self) -> bytes:
        """The text format: this process's metrics, then the cluster's."""
        await self._refresh()
        return generate_latest(REGISTRY) + generate_latest(self._cluster)

    async def cluster(self) -> ClusterSnapshot | None:
        """The cluster's numbers as last read (read now if older than the cache)."""
        await self._refresh()
        return self._collector.snapshot

    async def _refresh(self) -> None:
        if time.monotonic() - self._read_at < self._cache_s:
            return
        async with self._lock:  # a scrape that waited here finds the read fresh
            if time.monotonic() - self._read_at < self._cache_s:
                return
            self._collector.snapshot = await self._read() if self._health.available else None
            self._read_at = time.monotonic()

    async def _read(self) -> ClusterSnapshot | None:
        try:
            async with self._db.connect() as conn:
                return await snapshot(conn)
        except Exception as exc:
            self._health.report(exc)
            log.warning("metrics.cluster_read_failed", error=str(exc)[:300])
            return None

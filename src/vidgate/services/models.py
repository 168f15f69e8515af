"""The model catalogue as the API lists it: each model's card, and for each of its
deployments whether a provider is configured for it and whether it is healthy now (an
adapter's ref is listed once per deployment of that adapter; ``core/deployment_refs.py``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.catalog import Catalog, DeploymentRef, ModelCard
from vidgate.core.deployment_refs import DeploymentRefs
from vidgate.db.deployments import HealthRecord, deployment_health_all


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """What an operator needs to see about a deployment, and never a credential."""

    ref: DeploymentRef
    configured: bool
    healthy: bool
    # Set while the deployment's circuit breaker holds it open.
    circuit_open_until: dt.datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class ModelEntry:
    card: ModelCard
    deployments: list[DeploymentStatus]


class ModelService:
    def __init__(self, catalog: Catalog, refs: DeploymentRefs, db: AsyncEngine) -> None:
        self._catalog = catalog
        # Which configured deployments serve each card (the engine's, shared).
        self._refs = refs
        self._db = db

    async def list(self) -> list[ModelEntry]:
        health = await self._health()
        now = dt.datetime.now(dt.UTC)
        return [self._entry(card, health, now) for card in self._catalog.models()]

    async def get(self, model_id: str) -> ModelEntry:
        """``NotFound`` (naming the closest model) for an id the catalogue lacks."""
        card = self._catalog.get(model_id)
        return self._entry(card, await self._health(), dt.datetime.now(dt.UTC))

    async def _health(self) -> dict[str, HealthRecord]:
        async with self._db.connect() as conn:
            return await deployment_health_all(conn)

    def _entry(
        self, card: ModelCard, health: dict[str, HealthRecord], now: dt.datetime
    ) -> ModelEntry:
        return model_entry(card, self._refs, health, now)


def model_entry(
    card: ModelCard, refs: DeploymentRefs, health: dict[str, HealthRecord], now: dt.datetime
) -> ModelEntry:
    """A card with each deployment that serves it: configured (a provider was built for
    it) and healthy (its circuit breaker is closed). ``vidgate models`` shows the same."""
    return ModelEntry(card, [_status(entry.ref, refs, health, now) for entry in refs.listed(card)])


def _status(
    ref: DeploymentRef, refs: DeploymentRefs, health: dict[str, HealthRecord], now: dt.datetime
) -> DeploymentStatus:
    record = health.get(ref.provider)
    configured = ref.provider in refs
    open_until = record.open_until if record and record.open_until else None
    open_now = open_until is not None and open_until > now
    return DeploymentStatus(
        ref=ref,
        configured=configured,
        healthy=configured and not open_now,
        circuit_open_until=open_until if open_now else None,
        last_error=record.last_error if record and record.consecutive_failures else None,
    )

"""Choosing a deployment for a job, and keeping failing ones out for a while.

- Test keys always reach the sandbox.
- Live keys reach the model's deployments that are configured here (a ref naming an
  adapter, ``kling``, means every deployment of it) and can take the request (the
  adapter's ``validate``: the catalogue's capability data for the deployment's upstream
  model, plus what only the adapter knows), highest ``priority`` first, then at random by
  ``weight``; a deployment whose circuit breaker is open is skipped while another one is
  available.
- Right before submit the same check runs again (``check_before_submit``).
- A retryable failure counts against the deployment; ``BREAKER_THRESHOLD`` in a row
  open its breaker for ``BREAKER_COOLDOWN_S``. An auth failure opens it at once, for
  ``UNHEALTHY_COOLDOWN_S``. A success closes it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.catalog import DeploymentRef, ModelCard
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.db.deployments import (
    open_breakers,
    record_deployment_failure,
    record_deployment_success,
)
from vidgate.engine.context import EngineContext
from vidgate.providers.base import Provider, ProviderError
from vidgate.providers.registry import SANDBOX

BREAKER_THRESHOLD = 3
BREAKER_COOLDOWN_S = 30.0
UNHEALTHY_COOLDOWN_S = 300.0


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    upstream_model: str | None
    # Why this deployment, in words (POST /v1/videos/estimate shows it).
    reason: str = ""


def candidates(ctx: EngineContext, card: ModelCard, mode: str) -> list[DeploymentRef]:
    """The card's refs, one per configured deployment (``core/deployment_refs.py``: an
    adapter name means every deployment of that adapter)."""
    if mode == "test":
        return [DeploymentRef(provider=SANDBOX, upstream_model=card.id)]
    return ctx.refs.configured(card)


def _serves(ctx: EngineContext, ref: DeploymentRef, spec: JobSpec) -> InvalidParameter | None:
    try:
        ctx.providers[ref.provider].validate(spec, ref.upstream_model)
    except InvalidParameter as exc:
        return exc
    return None


def check_before_submit(provider: Provider, spec: JobSpec, upstream_model: str | None) -> None:
    """Routing checked the spec at create; this runs the same check again before the
    adapter builds a request, so a job routed before a configuration change, or of a
    kind the upstream model does not take, fails with a clear final error instead of
    reaching the upstream."""
    try:
        provider.validate(spec, upstream_model)
    except InvalidParameter as exc:
        raise ProviderError("invalid_parameter", exc.message, retryable=False) from exc


def _choose(refs: list[DeploymentRef]) -> DeploymentRef:
    top = max(r.priority for r in refs)
    group = [r for r in refs if r.priority == top]
    weights = [max(r.weight, 0) for r in group]
    if sum(weights) == 0:
        return group[0]
    return random.choices(group, weights=weights, k=1)[0]


async def pick(
    ctx: EngineContext,
    conn: AsyncConnection,
    card: ModelCard,
    spec: JobSpec,
    mode: str,
    *,
    exclude: Iterable[str] = (),
    prefer: str | None = None,
    strict: bool = False,
) -> Route | None:
    """A deployment for ``spec``; ``None`` when none is left (``exclude``d or all open).

    ``prefer`` wins when it can serve (remix/extend go back to the source's upstream).
    ``strict``: raise the adapter's ``InvalidParameter`` when no deployment can serve
    the request at all, so a create gets a 400 that says why.
    """
    if mode == "test":
        return Route(SANDBOX, card.id, "a test key: every model runs on the sandbox")
    excluded = set(exclude)
    refs = [r for r in candidates(ctx, card, mode) if r.provider not in excluded]
    able: list[DeploymentRef] = []
    first_refusal: InvalidParameter | None = None
    for ref in refs:
        refusal = _serves(ctx, ref, spec)
        if refusal is None:
            able.append(ref)
        elif first_refusal is None:
            first_refusal = refusal
    if not able:
        if strict and first_refusal is not None:
            raise first_refusal
        return None
    for ref in able:
        if ref.provider == prefer:
            return Route(ref.provider, ref.upstream_model, "the deployment of the source video")
    closed = set(r.provider for r in able) - await open_breakers(conn, [r.provider for r in able])
    pool = [r for r in able if r.provider in closed]
    if not pool:
        if strict:
            # Accept the job anyway: it waits in vidgate until a breaker closes.
            pool = able
        else:
            return None
    chosen = _choose(pool)
    reason = _reason(chosen, able, pool, closed, len(refs))
    return Route(chosen.provider, chosen.upstream_model, reason)


def _reason(
    chosen: DeploymentRef,
    able: list[DeploymentRef],
    pool: list[DeploymentRef],
    closed: set[str],
    configured: int,
) -> str:
    """Why ``pick`` chose ``chosen`` from ``pool``: the ``able`` ones whose breaker is
    ``closed``, or all of them when none is."""
    tied = [r for r in pool if r.priority == chosen.priority]
    if len(able) == 1:
        why = "the only configured deployment that can serve this request"
    elif len(tied) == 1:
        why = f"the highest priority ({chosen.priority}) of {len(pool)} that can serve it"
    else:
        total = sum(max(r.weight, 0) for r in tied)
        why = (
            f"by weight ({chosen.weight} of {total}) among {len(tied)} deployments of"
            f" priority {chosen.priority}; another request may go to another of them"
        )
    open_ = sorted(r.provider for r in able if r.provider not in closed)
    if open_ and closed:
        why += f"; passed over, circuit breaker open: {', '.join(open_)}"
    elif open_:
        why = (
            f"every deployment that can serve it has its circuit breaker open; the job"
            f" would wait in vidgate for {chosen.provider}"
        )
    unable = configured - len(able)
    if unable:
        why += f"; {unable} other configured deployment(s) cannot take this request"
    return why


async def record_failure(conn: AsyncConnection, deployment: str, error: ProviderError) -> None:
    if deployment == SANDBOX:
        return
    await record_deployment_failure(
        conn,
        deployment,
        error.code,
        threshold=BREAKER_THRESHOLD,
        cooldown_s=UNHEALTHY_COOLDOWN_S if error.unhealthy else BREAKER_COOLDOWN_S,
        unhealthy=error.unhealthy,
    )


async def record_success(conn: AsyncConnection, deployment: str) -> None:
    if deployment != SANDBOX:
        await record_deployment_success(conn, deployment)

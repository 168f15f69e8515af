"""Which configured deployments serve a model: its ``deployments:`` refs resolved.

A ref's ``provider`` is either an adapter name (a key of the registry's ``ADAPTERS``:
``kling``, ``openai_videos``, ...), served by every configured deployment of that
adapter, or the name of one deployment (``kling-eu``), served by that one only. So an
operator's ``azure-sora: {provider: openai_videos}`` serves the built-in ``sora-2``, and
two Kling accounts both serve the Kling models, each with its own circuit breaker and
health (they are keyed by deployment name). A deployment a card also names on its own
keeps that ref (its priority, weight and upstream model), not the adapter's copy.

The adapter -> deployments map is built once, and each card's refs are resolved on first
use and kept: a create pays a dict lookup, not a scan of the configuration.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from vidgate.core.catalog import DeploymentRef, ModelCard


@dataclass(frozen=True, slots=True)
class ResolvedRef:
    """One entry of a card as listed: ``ref.provider`` is a deployment name, or, where
    nothing is configured for a ref, the ref as written (``configured`` False)."""

    ref: DeploymentRef
    configured: bool


class DeploymentRefs:
    def __init__(self, deployments: Mapping[str, str], adapters: Collection[str]) -> None:
        """``deployments``: each configured deployment's name -> its adapter;
        ``adapters``: every adapter name there is (configured or not)."""
        self._adapters = frozenset(adapters)
        self._configured = frozenset(deployments)
        by_adapter: dict[str, list[str]] = {}
        for name, adapter in deployments.items():
            by_adapter.setdefault(adapter, []).append(name)
        self._by_adapter = {adapter: tuple(names) for adapter, names in by_adapter.items()}
        # Card id -> (the card, its resolved entries); the card is kept to tell a card
        # of another catalogue with the same id from this one.
        self._cards: dict[str, tuple[ModelCard, tuple[ResolvedRef, ...]]] = {}

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is a configured deployment."""
        return name in self._configured

    def deployments_of(self, adapter: str) -> tuple[str, ...]:
        return self._by_adapter.get(adapter, ())

    def listed(self, card: ModelCard) -> tuple[ResolvedRef, ...]:
        """Every entry of ``card`` in the card's order, an adapter's entry once per
        deployment of that adapter."""
        cached = self._cards.get(card.id)
        if cached is not None and cached[0] is card:
            return cached[1]
        resolved = self._resolve(card)
        self._cards[card.id] = (card, resolved)
        return resolved

    def configured(self, card: ModelCard) -> list[DeploymentRef]:
        """The refs routing chooses from: one per configured deployment serving ``card``."""
        return [r.ref for r in self.listed(card) if r.configured]

    def _resolve(self, card: ModelCard) -> tuple[ResolvedRef, ...]:
        named = {r.provider for r in card.deployments if r.provider not in self._adapters}
        out: list[ResolvedRef] = []
        for ref in card.deployments:
            if ref.provider not in self._adapters:
                out.append(ResolvedRef(ref, ref.provider in self))
                continue
            names = self.deployments_of(ref.provider)
            if not names:
                out.append(ResolvedRef(ref, False))
            out.extend(
                ResolvedRef(ref.model_copy(update={"provider": name}), True)
                for name in names
                if name not in named
            )
        return tuple(out)

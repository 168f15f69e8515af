"""Why routing picked a deployment, in the words ``POST /v1/videos/estimate`` shows."""

from __future__ import annotations

from vidgate.core.card_limits import DeploymentRef
from vidgate.engine.routing import _reason


def _ref(name: str, priority: int = 0, weight: int = 1) -> DeploymentRef:
    return DeploymentRef(provider=name, priority=priority, weight=weight)


def test_the_only_deployment_that_can_serve() -> None:
    a = _ref("a")
    assert _reason(a, [a], [a], {"a"}, 1) == (
        "the only configured deployment that can serve this request"
    )
    # Others configured but unable to take it are counted.
    assert _reason(a, [a], [a], {"a"}, 3).endswith(
        "; 2 other configured deployment(s) cannot take this request"
    )


def test_priority_then_weight() -> None:
    high, low = _ref("high", priority=2), _ref("low", priority=1)
    assert _reason(high, [high, low], [high, low], {"high", "low"}, 2) == (
        "the highest priority (2) of 2 that can serve it"
    )
    a, b = _ref("a", weight=3), _ref("b", weight=1)
    assert _reason(a, [a, b], [a, b], {"a", "b"}, 2).startswith(
        "by weight (3 of 4) among 2 deployments of priority 0"
    )


def test_open_circuit_breakers_are_named() -> None:
    high, low = _ref("high", priority=2), _ref("low", priority=1)
    # The higher one is kept out: the lower one serves, and the reason says why.
    assert _reason(low, [high, low], [low], {"low"}, 2) == (
        "the highest priority (1) of 1 that can serve it; passed over, circuit breaker open: high"
    )
    assert _reason(high, [high, low], [high, low], set(), 2).startswith(
        "every deployment that can serve it has its circuit breaker open"
    )

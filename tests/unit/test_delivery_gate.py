"""engine/delivery_gate.py: webhook deliveries in flight per destination and per tenant."""

from __future__ import annotations

import pytest

from vidgate.engine.delivery_gate import MAX_DEFER_GROWTH, MIN_DEFER_S, DeliveryGate


def test_each_destination_and_each_tenant_has_its_cap() -> None:
    gate = DeliveryGate(per_destination=2, per_tenant=3)
    a1 = gate.try_enter("a:443", "t1")
    a2 = gate.try_enter("a:443", "t2")
    assert a1 is not None and a2 is not None
    # The destination is full, whoever asks.
    assert gate.try_enter("a:443", "t3") is None
    # Tenant t1 fills its cap with other host names.
    b = gate.try_enter("b:443", "t1")
    c = gate.try_enter("c:443", "t1")
    assert b is not None and c is not None
    assert gate.try_enter("d:443", "t1") is None
    # A refusal takes nothing: another tenant still gets d.
    assert gate.in_flight("d:443", "t1") == (0, 3)
    d = gate.try_enter("d:443", "t2")
    assert d is not None
    for slot in (a1, a2, b, c, d):
        with slot:
            pass
    assert gate.in_flight("a:443", "t1") == (0, 0)
    # Nothing is kept for keys with nothing in flight.
    assert gate._destinations == {} and gate._tenants == {}


def test_a_slot_is_freed_when_the_delivery_fails() -> None:
    gate = DeliveryGate(per_destination=1, per_tenant=1)
    slot = gate.try_enter("a:443", "t")
    assert slot is not None
    with pytest.raises(RuntimeError), slot:
        raise RuntimeError("send failed")
    assert gate.try_enter("a:443", "t") is not None


def test_the_wait_before_looking_again_is_bounded_and_grows_with_deferrals() -> None:
    gate = DeliveryGate(per_destination=1, per_tenant=4)
    assert gate.try_enter("a:443", "t") is not None
    timeout = 10.0
    first = [gate.defer_s("a:443", "t", deferred=0, timeout_s=timeout) for _ in range(200)]
    # Deliveries just started: the shortest wait, with jitter.
    assert all(MIN_DEFER_S / 2 <= d <= MIN_DEFER_S + 0.01 for d in first)
    assert len({round(d, 4) for d in first}) > 1
    grown = [gate.defer_s("a:443", "t", deferred=20, timeout_s=timeout) for _ in range(200)]
    assert max(grown) <= MIN_DEFER_S * MAX_DEFER_GROWTH + 0.1
    assert min(grown) >= MIN_DEFER_S * MAX_DEFER_GROWTH / 2 - 0.1


def test_a_slow_destination_is_looked_at_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("vidgate.engine.delivery_gate.time.monotonic", lambda: clock[0])
    gate = DeliveryGate(per_destination=1, per_tenant=4)
    assert gate.try_enter("slow:443", "t") is not None
    clock[0] += 6.0  # the delivery holding the cap has been running 6 s
    waits = [gate.defer_s("slow:443", "t", deferred=0, timeout_s=10.0) for _ in range(100)]
    assert all(3.0 <= w <= 6.0 for w in waits)
    clock[0] += 60.0  # never more than the deadline's worth, times the growth
    waits = [gate.defer_s("slow:443", "t", deferred=9, timeout_s=10.0) for _ in range(100)]
    assert all(w <= 10.0 * MAX_DEFER_GROWTH for w in waits)

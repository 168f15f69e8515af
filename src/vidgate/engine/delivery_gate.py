"""Caps on webhook deliveries in flight in one worker process: per destination and per
tenant.

Without them one tenant's slow receiver took every worker slot: 34 events to a URL
that answers a byte every 2 s held all 32 slots of the shared queue, and other
tenants' events waited behind them. With them a tenant holds at most ``per_tenant``
slots (an attacker may use many host names), and a destination at most
``per_destination`` (many tenants may share one receiver). A delivery that finds a
cap full does not wait for it holding a slot: engine/webhooks.py puts it back on the
queue a moment later (``defer_s``).
"""

from __future__ import annotations

import random
import time
from types import TracebackType

# Bounds of the wait before a deferred delivery looks again: the shortest keeps a fast
# receiver's burst moving (its slots free within milliseconds); the factor on repeated
# deferrals keeps a large backlog behind a slow receiver from re-queueing itself many
# times a second.
MIN_DEFER_S = 0.25
MAX_DEFER_GROWTH = 16


class _Held:
    """The deliveries in flight under one key: how many, and since when (the sum of
    their start times, so that their mean age costs nothing to keep)."""

    __slots__ = ("count", "started")

    def __init__(self) -> None:
        self.count = 0
        self.started = 0.0


class DeliveryGate:
    """In-flight webhook deliveries of this process, by destination and by tenant.

    One per worker process, shared by all its procrastinate workers; the event loop is
    single-threaded, so ``try_enter`` checks and takes both caps at once.
    """

    def __init__(self, *, per_destination: int, per_tenant: int) -> None:
        self.per_destination = max(1, per_destination)
        self.per_tenant = max(1, per_tenant)
        self._destinations: dict[str, _Held] = {}
        self._tenants: dict[str, _Held] = {}

    def try_enter(self, dest: str, tenant: str) -> Slot | None:
        """A slot under both caps, or None when either is full. Use it as a context
        manager: leaving it frees the slot."""
        if self._count(self._destinations, dest) >= self.per_destination:
            return None
        if self._count(self._tenants, tenant) >= self.per_tenant:
            return None
        now = time.monotonic()
        for table, key in ((self._destinations, dest), (self._tenants, tenant)):
            held = table.setdefault(key, _Held())
            held.count += 1
            held.started += now
        return Slot(self, dest, tenant, now)

    def _leave(self, dest: str, tenant: str, started: float) -> None:
        for table, key in ((self._destinations, dest), (self._tenants, tenant)):
            held = table[key]
            held.count -= 1
            held.started -= started
            if held.count == 0:
                # Only keys with deliveries in flight are kept: no growth with the
                # number of destinations ever seen.
                del table[key]

    def in_flight(self, dest: str, tenant: str) -> tuple[int, int]:
        return self._count(self._destinations, dest), self._count(self._tenants, tenant)

    def defer_s(self, dest: str, tenant: str, *, deferred: int, timeout_s: float) -> float:
        """How long a delivery refused by a full cap waits before it looks again.

        About as long as the deliveries holding that cap have been running on average
        (a receiver that answers in milliseconds frees its slots in milliseconds; a
        trickling one holds them up to ``timeout_s``), growing with the delivery's
        consecutive deferrals up to ``MAX_DEFER_GROWTH`` times, with jitter so that a
        backlog does not come back all at once.
        """
        now = time.monotonic()
        ages = [
            now - held.started / held.count
            for held, cap in (
                (self._destinations.get(dest), self.per_destination),
                (self._tenants.get(tenant), self.per_tenant),
            )
            if held is not None and held.count >= cap
        ]
        base = min(timeout_s, max([MIN_DEFER_S, *ages]))
        growth = min(MAX_DEFER_GROWTH, 2**deferred)
        return float(random.uniform(0.5, 1.0) * base * growth)

    @staticmethod
    def _count(table: dict[str, _Held], key: str) -> int:
        held = table.get(key)
        return held.count if held is not None else 0


class Slot:
    """One delivery's place under its destination's and its tenant's caps."""

    __slots__ = ("_dest", "_gate", "_started", "_tenant")

    def __init__(self, gate: DeliveryGate, dest: str, tenant: str, started: float) -> None:
        self._gate = gate
        self._dest = dest
        self._tenant = tenant
        self._started = started

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._gate._leave(self._dest, self._tenant, self._started)

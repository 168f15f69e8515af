"""Budgets: what they are, which period a moment falls in, and the refusal that says
which budget a create would overrun.

A budget caps what a project (``api_key_id`` None) or one of its keys spends per UTC
calendar day, per UTC calendar month, or in all (``total``). What counts against it is
the sum of the ledger's rows of the jobs booked in the period (db/ledger.py: a job's
estimate while it runs, its cost once settled, 0 once released).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from vidgate.core.errors import InsufficientQuota

Period = Literal["day", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "month", "total")
DEFAULT_PERIOD: Period = "month"
# budgets.usd is NUMERIC(12,6).
MAX_USD = Decimal("999999")
USD_PLACES = 6


@dataclass(frozen=True, slots=True)
class Window:
    """The period a moment falls in: ``start`` inclusive, ``end`` exclusive; both None
    for ``total``."""

    start: dt.datetime | None
    end: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    tenant_id: str
    tenant_name: str
    api_key_id: str | None
    period: Period
    usd: Decimal
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def scope(self) -> str:
        return f"key {self.api_key_id}" if self.api_key_id else f"project {self.tenant_name}"


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget and what counts against it in the current period."""

    budget: Budget
    window: Window
    spent: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(self.budget.usd - self.spent, Decimal(0))


def window(period: Period, at: dt.datetime) -> Window:
    """The UTC calendar day or month that ``at`` falls in (a naive ``at`` is UTC)."""
    if period == "total":
        return Window(None, None)
    utc = at.astimezone(dt.UTC) if at.tzinfo else at.replace(tzinfo=dt.UTC)
    if period == "day":
        start = utc.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start, start + dt.timedelta(days=1))
    start = utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return Window(start, following)


def usd_text(value: Decimal) -> str:
    """Cents where the amount has no finer part (``12.50``), else as many of the
    ledger's six places as it needs (``0.037``)."""
    cents = value.quantize(Decimal("0.01"))
    return f"{cents:.2f}" if cents == value else f"{value.normalize():f}"


def exceeded(status: BudgetStatus, estimate: Decimal) -> InsufficientQuota:
    """The 402 of a create whose ``estimate`` does not fit in ``status``'s budget."""
    budget = status.budget
    return InsufficientQuota(
        f"budget {budget.id} ({budget.scope}, {budget.period}: {usd_text(budget.usd)} USD)"
        f" has {usd_text(status.remaining)} USD left and this video's estimate is"
        f" {usd_text(estimate)} USD ({usd_text(status.spent)} USD reserved or spent"
        f" {_since(status.window)}); nothing was created",
        code="budget_exceeded",
    )


def unpriced(budget: Budget, model: str) -> InsufficientQuota:
    """The 402 of a create under a budget for a model with no price: its cost is
    unknown, and an unknown cost cannot be held against a cap."""
    return InsufficientQuota(
        f"model {model!r} has no price, so its cost cannot be reserved against budget"
        f" {budget.id} ({budget.scope}, {budget.period}: {usd_text(budget.usd)} USD); give the"
        " model a price in the models file, or remove the budget; nothing was created",
        param="model",
        code="budget_unpriced_model",
    )


def _since(w: Window) -> str:
    if w.start is None:
        return "in all"
    return f"since {w.start:%Y-%m-%d %H:%M} UTC"

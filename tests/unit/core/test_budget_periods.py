"""Budget periods are UTC calendar days and months; amounts in messages read as money."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from vidgate.core.budgets import Budget, BudgetStatus, Window, exceeded, usd_text, window

UTC = dt.UTC


@pytest.mark.parametrize(
    ("at", "period", "start", "end"),
    [
        # A moment in the UTC day before midnight, given in another zone.
        (
            dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "day",
            dt.datetime(2027, 1, 1, tzinfo=UTC),
            dt.datetime(2027, 1, 2, tzinfo=UTC),
        ),
        (
            dt.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "month",
            dt.datetime(2026, 12, 1, tzinfo=UTC),
            dt.datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            dt.datetime(2028, 2, 29, 12, tzinfo=UTC),
            "month",
            dt.datetime(2028, 2, 1, tzinfo=UTC),
            dt.datetime(2028, 3, 1, tzinfo=UTC),
        ),
        (
            dt.datetime(2026, 1, 31, 0, 0),  # naive: UTC
            "day",
            dt.datetime(2026, 1, 31, tzinfo=UTC),
            dt.datetime(2026, 2, 1, tzinfo=UTC),
        ),
    ],
)
def test_periods_are_utc_calendar_days_and_months(
    at: dt.datetime, period: str, start: dt.datetime, end: dt.datetime
) -> None:
    assert window(period, at) == Window(start, end)  # type: ignore[arg-type]


def test_total_has_no_window() -> None:
    assert window("total", dt.datetime.now(UTC)) == Window(None, None)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("10", "10.00"),
        ("12.5", "12.50"),
        ("0.037", "0.037"),
        ("0.000001", "0.000001"),
        ("0.400000", "0.40"),
        ("1E+1", "10.00"),
    ],
)
def test_amounts_read_as_money(value: str, text: str) -> None:
    assert usd_text(Decimal(value)) == text


def test_the_refusal_names_the_budget_and_the_amounts() -> None:
    at = dt.datetime(2026, 12, 5, 10, tzinfo=UTC)
    budget = Budget("budget_x", "tenant_t", "acme", None, "month", Decimal(1), at, at)
    error = exceeded(BudgetStatus(budget, window("month", at), Decimal("0.96")), Decimal("0.05"))
    assert (error.status_code, error.type, error.code, error.param) == (
        402,
        "insufficient_quota",
        "budget_exceeded",
        None,
    )
    assert error.message == (
        "budget budget_x (project acme, month: 1.00 USD) has 0.04 USD left and this"
        " video's estimate is 0.05 USD (0.96 USD reserved or spent since 2026-12-01 00:00"
        " UTC); nothing was created"
    )

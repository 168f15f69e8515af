"""Usage's parameters, totals and CSV (``core/usage.py``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from vidgate.core.errors import InvalidParameter
from vidgate.core.usage import UsageRow, csv_text, parse_query, report, usage_json

TODAY = dt.date(2026, 12, 5)


def test_defaults_are_this_month_so_far_without_grouping() -> None:
    query = parse_query(None, None, None, today=TODAY)
    assert (query.start, query.end, query.group_by) == (dt.date(2026, 12, 1), TODAY, ())
    # Both days included: the range ends at the next day's midnight, UTC.
    assert query.since == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert query.until == dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    assert parse_query("2026-01-01", "2026-01-01", " day,model ", today=TODAY).group_by == (
        "day",
        "model",
    )


@pytest.mark.parametrize(
    ("start", "end", "group_by", "param", "fragment"),
    [
        ("2026-13-01", None, None, "start", "not a date"),
        ("20261201", None, None, "start", "not a date"),
        ("2026-12-01T00:00", None, None, "start", "not a date"),
        (None, "yesterday", None, "end", "not a date"),
        ("2026-12-05", "2026-12-04", None, "end", "before start"),
        ("2024-01-01", "2026-01-01", None, "end", "longer than 366 days"),
        (None, None, "model,tenant", "group_by", "'tenant' is not a field"),
        (None, None, "day,day", "group_by", "twice"),
    ],
)
def test_bad_parameters_are_named(
    start: str | None, end: str | None, group_by: str | None, param: str, fragment: str
) -> None:
    with pytest.raises(InvalidParameter, match=fragment) as caught:
        parse_query(start, end, group_by, today=TODAY)
    assert caught.value.param == param


def test_totals_split_live_from_test_and_skip_unknown_costs() -> None:
    day = dt.date(2026, 12, 2)
    rows = [
        UsageRow("sora-2", None, day, "live", 2, 16, Decimal("1.6")),
        UsageRow("sandbox", None, day, "live", 1, 4, None),
        UsageRow("sora-2", None, day, "test", 3, 12, Decimal("1.2")),
    ]
    query = parse_query("2026-12-01", "2026-12-03", "model,day", today=TODAY)
    found = usage_json(report("tenant_1", query, rows))
    assert found["object"] == "usage" and found["currency"] == "USD"
    assert (found["start"], found["end"]) == ("2026-12-01", "2026-12-03")
    assert found["total"] == {"count": 3, "seconds": 20, "cost": 1.6}
    assert found["test_total"] == {"count": 3, "seconds": 12, "cost": 1.2}
    assert found["data"][1] == {
        "model": "sandbox",
        "key_id": None,
        "day": "2026-12-02",
        "count": 1,
        "seconds": 4,
        "cost": None,
        "mode": "live",
    }
    assert csv_text(rows).splitlines() == [
        "model,key_id,day,mode,count,seconds,cost",
        "sora-2,,2026-12-02,live,2,16,1.6",
        "sandbox,,2026-12-02,live,1,4,",
        "sora-2,,2026-12-02,test,3,12,1.2",
    ]

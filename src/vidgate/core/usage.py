"""Usage: what a project's jobs produced and cost over a range of UTC days.

Which jobs count, and when: a job counts once it has **completed**, on the UTC day it
completed (``completed_at``), the day its cost was settled; a failed or cancelled job
produced nothing and is charged nothing, so it is not counted. ``seconds`` is what was
ordered and delivered (the spec's seconds times ``n``; for an extension, the seconds
added). ``cost`` is a live job's settled cost (``jobs.cost``) and a test job's price
(``jobs.estimated_cost``): test jobs are priced and shown, never charged (their own
``cost`` is 0). A job whose cost is unknown (a model without a price whose provider
reported none) counts in ``count`` and ``seconds`` and not in ``cost``; a group of
only such jobs has a ``cost`` of null. Live jobs make ``total``, test jobs
``test_total``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from vidgate.core.errors import InvalidParameter

GroupBy = Literal["model", "key", "day"]
GROUP_BY: tuple[GroupBy, ...] = ("model", "key", "day")
# A range longer than this is refused: grouped by day and key it would answer millions
# of rows at once.
MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group: the fields not grouped by are None; ``mode`` is always set."""

    model: str | None
    key_id: str | None
    day: dt.date | None
    mode: Literal["live", "test"]
    count: int
    seconds: int
    cost: Decimal | None


@dataclass(frozen=True, slots=True)
class UsageTotal:
    count: int = 0
    seconds: int = 0
    cost: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class UsageReport:
    project_id: str
    start: dt.date
    end: dt.date
    total: UsageTotal
    test_total: UsageTotal
    data: list[UsageRow]


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Validated parameters: the days ``start`` to ``end``, both included."""

    start: dt.date
    end: dt.date
    group_by: tuple[GroupBy, ...]

    @property
    def since(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)

    @property
    def until(self) -> dt.datetime:
        """The end of the ``end`` day (exclusive)."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def _day(value: str | None, param: str, default: dt.date) -> dt.date:
    if value is None:
        return default
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(
            f"{param} {value[:40]!r} is not a date; allowed: YYYY-MM-DD (a UTC day)", param=param
        ) from None


def parse_query(
    start: str | None, end: str | None, group_by: str | None, *, today: dt.date
) -> UsageQuery:
    """The query from its text (``start``/``end`` ``YYYY-MM-DD``, both included;
    ``group_by`` a comma-separated subset of model, key, day). Defaults: from the first
    day of ``today``'s month to ``today``; no grouping (one row per mode)."""
    first = _day(start, "start", today.replace(day=1))
    last = _day(end, "end", today)
    if last < first:
        raise InvalidParameter(f"end {last} is before start {first}", param="end")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidParameter(
            f"the range {first} to {last} is longer than {MAX_DAYS} days; ask in parts",
            param="end",
        )
    fields: list[GroupBy] = []
    for part in (group_by or "").split(","):
        name = part.strip()
        if not name:
            continue
        if name not in GROUP_BY:
            raise InvalidParameter(
                f"group_by {name[:40]!r} is not a field to group by; allowed: model, key, day",
                param="group_by",
            )
        if name in fields:
            raise InvalidParameter(f"group_by names {name} twice", param="group_by")
        fields.append(name)
    return UsageQuery(first, last, tuple(fields))


def report(project_id: str, query: UsageQuery, rows: Sequence[UsageRow]) -> UsageReport:
    """The report from its rows: the totals are the rows' sums, per mode."""
    totals = {mode: UsageTotal() for mode in ("live", "test")}
    for row in rows:
        t = totals[row.mode]
        totals[row.mode] = UsageTotal(
            t.count + row.count, t.seconds + row.seconds, t.cost + (row.cost or 0)
        )
    return UsageReport(
        project_id, query.start, query.end, totals["live"], totals["test"], list(rows)
    )


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _total(total: UsageTotal) -> dict[str, Any]:
    return {"count": total.count, "seconds": total.seconds, "cost": float(total.cost)}


def _row(row: UsageRow) -> dict[str, Any]:
    return {
        "model": row.model,
        "key_id": row.key_id,
        "day": row.day.isoformat() if row.day else None,
        "count": row.count,
        "seconds": row.seconds,
        "cost": _usd(row.cost),
        "mode": row.mode,
    }


def usage_json(found: UsageReport) -> dict[str, Any]:
    """The report as ``GET /v1/usage`` and ``vidgate usage --json`` answer it (prices
    as JSON numbers, USD)."""
    return {
        "object": "usage",
        "start": found.start.isoformat(),
        "end": found.end.isoformat(),
        "currency": "USD",
        "total": _total(found.total),
        "test_total": _total(found.test_total),
        "data": [_row(row) for row in found.data],
    }


CSV_COLUMNS = ("model", "key_id", "day", "mode", "count", "seconds", "cost")


def csv_text(rows: Sequence[UsageRow]) -> str:
    """The rows as CSV (RFC 4180 line ends), a header line first; an empty field is a
    field not grouped by, or an unknown cost."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.model or "",
                row.key_id or "",
                row.day.isoformat() if row.day else "",
                row.mode,
                row.count,
                row.seconds,
                "" if row.cost is None else f"{row.cost:f}",
            ]
        )
    return buffer.getvalue()

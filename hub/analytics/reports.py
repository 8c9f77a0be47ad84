"""Every report by name, so the API, the dashboard, the CLI and the exports share one list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.analytics import crosssell, retention, stages
from hub.analytics.retention import Period, Window
from hub.store.models import LIFECYCLE_STAGES, Customer, Segment
from hub.store.types import utcnow

SEGMENT_EXPORT_LIMIT = 100_000


class ReportError(ValueError):
    """An unknown report or a parameter it cannot use."""


@dataclass(frozen=True, slots=True)
class Params:
    """What a report may be asked for: the period kind, a date window, a limit, a segment."""

    period: Period = "month"
    start: date | None = None
    end: date | None = None
    limit: int = 100
    segment_id: int | None = None
    churn_days: int = 365

    @property
    def window(self) -> Window:
        """[start, end] as UTC instants; the default is the last 90 days."""
        end = self.end or utcnow().date()
        start = self.start or end - timedelta(days=90)
        return Window(datetime.combine(start, time.min, tzinfo=UTC),
                      datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC))


Rows = list[dict[str, Any]]
Report = Callable[[AsyncSession, Params], Awaitable[Rows]]


async def _retention(session: AsyncSession, p: Params) -> Rows:
    return retention.as_rows(await retention.retention(session, p.period))


async def _cohorts(session: AsyncSession, p: Params) -> Rows:
    return retention.as_rows(await retention.cohorts(session, p.period))


async def _churn(session: AsyncSession, p: Params) -> Rows:
    return await retention.churn(session, today=p.end or utcnow().date(), after_days=p.churn_days, limit=p.limit)


async def _complaints(session: AsyncSession, p: Params) -> Rows:
    found = await retention.complaints(session, p.window)
    rate = {"category": "(all)", "opened": found["opened"], "rate": found["rate"],
            "customers_with_complaint": found["customers_with_complaint"],
            "customers_in_contact": found["customers_in_contact"]}
    return [*found["by_category"], rate]


async def _first_response(session: AsyncSession, p: Params) -> Rows:
    return await retention.first_response(session, p.window)


async def _workload(session: AsyncSession, p: Params) -> Rows:
    return await retention.workload(session, p.window)


async def _campaigns(session: AsyncSession, p: Params) -> Rows:
    return await retention.campaign_conversion(session)


async def _stages(session: AsyncSession, p: Params) -> Rows:
    """Customers per stage at the end of each of the last `limit` months (at most 12), and now.

    Months before anyone had a stage are left out, so a young database shows only what it has.
    """
    moments = month_ends(utcnow(), min(p.limit, 12))
    found = await stages.distribution_on(session, moments)
    rows = [{"at": m.date().isoformat(), **counts} for m, counts in found.items()]
    while len(rows) > 1 and not any(rows[0][s] for s in LIFECYCLE_STAGES):
        rows.pop(0)
    return rows


async def _pairs(session: AsyncSession, p: Params) -> Rows:
    return await crosssell.pairs(session, limit=p.limit)


async def _segment(session: AsyncSession, p: Params) -> Rows:
    """The customers of a saved segment (its condition compiled to SQL by hub.campaigns)."""
    from hub.campaigns import segments

    if p.segment_id is None:
        raise ReportError("the segment report needs segment_id")
    segment = await session.get(Segment, p.segment_id)
    if segment is None:
        raise ReportError(f"no segment {p.segment_id}")
    rows = await session.execute(
        select(col(Customer.id), col(Customer.display_name), col(Customer.lifecycle_stage), col(Customer.language),
               col(Customer.last_contact_at))
        .where(segments.where(segment.condition), col(Customer.merged_into_id).is_(None))
        .order_by(col(Customer.id)).limit(SEGMENT_EXPORT_LIMIT))
    return [{"customer_id": cid, "name": name, "stage": stage, "language": lang,
             "last_contact_at": last.isoformat() if last else None} for cid, name, stage, lang, last in rows.all()]


def month_ends(now: datetime, count: int) -> list[datetime]:
    """The last instant of each of the `count` months before now's month, then now itself."""
    first = now.date().replace(day=1)
    ends = []
    for _ in range(max(count, 0)):
        ends.append(stages.end_of_day(first - timedelta(days=1)))
        first = (first - timedelta(days=1)).replace(day=1)
    return [*reversed(ends), now]


REPORTS: dict[str, Report] = {
    "retention": _retention, "cohorts": _cohorts, "churn": _churn, "complaints": _complaints,
    "first_response": _first_response, "workload": _workload, "campaigns": _campaigns, "stages": _stages,
    "product_pairs": _pairs, "segment": _segment,
}


async def run(session: AsyncSession, name: str, params: Params) -> Rows:
    """The rows of report `name`."""
    report = REPORTS.get(name)
    if report is None:
        raise ReportError(f"unknown report {name!r}; expected one of {', '.join(sorted(REPORTS))}")
    return await report(session, params)

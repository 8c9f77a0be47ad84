"""Retention and service reports, each a few grouped SQL queries that run the same on SQLite and PostgreSQL.

A customer is *active* in a period when it has a stay or purchase dated in it. Periods are
numbered (year*12 + month - 1 for months), so "the previous period" is plain arithmetic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Date, Integer, and_, cast, extract, func, literal, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Subquery
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from hub.store.models import (
    Agent,
    Campaign,
    CampaignRecipient,
    Complaint,
    Conversation,
    Customer,
    Intervention,
    Message,
    Stay,
)
from hub.store.types import UTCDateTime

Period = Literal["month", "quarter", "year"]
PERIODS: tuple[Period, ...] = ("month", "quarter", "year")


# --- periods ---------------------------------------------------------------------------------


def period_index(day: Any, period: Period) -> ColumnElement[int]:
    """The period number of a date column: consecutive periods differ by one."""
    year = cast(extract("year", day), Integer)
    month = cast(extract("month", day), Integer)
    if period == "year":
        return year
    if period == "quarter":
        return year * 4 + (month - 1) // 3
    return year * 12 + month - 1


def period_of(day: date, period: Period) -> int:
    """The same numbering as `period_index`, for a Python date."""
    if period == "year":
        return day.year
    if period == "quarter":
        return day.year * 4 + (day.month - 1) // 3
    return day.year * 12 + day.month - 1


def period_label(index: int, period: Period) -> str:
    """2025-03, 2025-Q1 or 2025."""
    if period == "year":
        return str(index)
    if period == "quarter":
        return f"{index // 4}-Q{index % 4 + 1}"
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _active(period: Period) -> Subquery:
    """Distinct (customer, period) pairs with a stay or purchase."""
    pidx = period_index(col(Stay.stay_date), period)
    return select(col(Stay.customer_id).label("customer_id"), pidx.label("pidx")).distinct().subquery("active")


# --- retention and cohorts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionRow:
    """Period N: customers active in N, in N-1, in both, and both / N-1 (None when N-1 had nobody)."""

    period: str
    active: int
    previous_active: int
    retained: int
    rate: float | None


async def retention(session: AsyncSession, period: Period = "month") -> list[RetentionRow]:
    """Customer retention rate for every period from the first to the last with activity."""
    now, before = _active(period), _active(period).alias("before")
    counts: dict[int, int] = {int(k): int(n) for k, n in (await session.execute(
        select(now.c.pidx, func.count()).group_by(now.c.pidx))).all()}
    kept: dict[int, int] = {int(k): int(n) for k, n in (await session.execute(
        select(now.c.pidx, func.count())
        .join(before, and_(before.c.customer_id == now.c.customer_id, before.c.pidx == now.c.pidx - 1))
        .group_by(now.c.pidx))).all()}
    if not counts:
        return []
    rows = []
    for index in range(min(counts), max(counts) + 1):
        previous, retained = counts.get(index - 1, 0), kept.get(index, 0)
        rows.append(RetentionRow(period_label(index, period), counts.get(index, 0), previous, retained,
                                 round(retained / previous, 4) if previous else None))
    return rows


@dataclass(frozen=True, slots=True)
class CohortRow:
    """Customers whose first stay fell in `cohort`, and how many were active k periods later."""

    cohort: str
    size: int
    active: list[int]
    rates: list[float]


async def cohorts(session: AsyncSession, period: Period = "month") -> list[CohortRow]:
    """The cohort retention table by first-stay period; `active[0]` is the cohort size."""
    active = _active(period)
    first = (select(active.c.customer_id, func.min(active.c.pidx).label("cohort"))
             .group_by(active.c.customer_id).subquery("first"))
    offset = (active.c.pidx - first.c.cohort).label("offset")
    found = (await session.execute(
        select(first.c.cohort, offset, func.count())
        .join(first, first.c.customer_id == active.c.customer_id)
        .group_by(first.c.cohort, offset))).all()
    table: dict[int, dict[int, int]] = {}
    for cohort, k, n in found:
        table.setdefault(int(cohort), {})[int(k)] = int(n)
    if not table:
        return []
    last = max(c + max(ks) for c, ks in table.items())
    rows = []
    for cohort in sorted(table):
        size = table[cohort].get(0, 0)
        series = [table[cohort].get(k, 0) for k in range(last - cohort + 1)]
        rows.append(CohortRow(period_label(cohort, period), size, series,
                              [round(n / size, 4) if size else 0.0 for n in series]))
    return rows


# --- churn -----------------------------------------------------------------------------------


async def churn(session: AsyncSession, *, today: date, after_days: int = 365, limit: int = 100) -> list[dict[str, Any]]:
    """Customers who bought before but not in the last `after_days` days, biggest spenders first."""
    last = func.max(Stay.stay_date)
    spend = func.sum(Stay.amount_cents)
    query = (
        select(col(Customer.id), col(Customer.display_name), col(Customer.lifecycle_stage), last.label("last"),
               func.count().label("n"), spend.label("cents"))
        .join(Stay, col(Stay.customer_id) == col(Customer.id))
        .where(col(Customer.merged_into_id).is_(None))
        .group_by(col(Customer.id), col(Customer.display_name), col(Customer.lifecycle_stage))
        .having(last < today - timedelta(days=after_days))
        .order_by(spend.desc(), col(Customer.id)).limit(limit)
    )
    return [{"customer_id": cid, "name": name, "stage": stage, "last_stay": _day(last_day),
             "days_since": (today - _as_date(last_day)).days, "purchases": n, "spent": cents / 100}
            for cid, name, stage, last_day, n, cents in (await session.execute(query)).all()]


# --- complaints, responses, workload, campaigns ---------------------------------------------------


def seconds_between(start: Any, end: Any, dialect: Dialect) -> ColumnElement[Any]:
    """Seconds from `start` to `end` for two timestamp columns."""
    if dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return extract("epoch", end - start)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC time window [start, end) that a report covers."""

    start: datetime
    end: datetime

    def has(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= literal(self.start, UTCDateTime()), column < literal(self.end, UTCDateTime()))


async def complaints(session: AsyncSession, window: Window) -> dict[str, Any]:
    """Complaints opened in the window per category with resolution hours, and the complaint rate.

    The rate is customers with a complaint / customers who wrote in or stayed in the window.
    """
    dialect = session.get_bind().dialect
    hours = seconds_between(col(Complaint.opened_at), col(Complaint.resolved_at), dialect) / 3600.0
    category = func.coalesce(col(Complaint.category), "other")
    rows = (await session.execute(
        select(category, func.count(), func.count(col(Complaint.resolved_at)), func.avg(hours))
        .where(window.has(col(Complaint.opened_at))).group_by(category).order_by(category))).all()
    complained = (await session.execute(select(func.count(func.distinct(col(Complaint.customer_id))))
                                        .where(window.has(col(Complaint.opened_at))))).scalar_one()
    wrote: Any = select(col(Message.customer_id).label("cid")).where(window.has(col(Message.created_at)),
                                                                 col(Message.direction) == "in")
    stayed: Any = select(col(Stay.customer_id).label("cid")).where(
        col(Stay.stay_date) >= window.start.date(), col(Stay.stay_date) < window.end.date())
    contacts = wrote.union(stayed).subquery("contacts")
    active = (await session.execute(select(func.count()).select_from(contacts))).scalar_one()
    return {
        "by_category": [{"category": c, "opened": int(n), "resolved": int(r),
                         "avg_resolution_hours": None if h is None else round(float(h), 2)} for c, n, r, h in rows],
        "opened": sum(int(r[1]) for r in rows), "customers_with_complaint": int(complained),
        "customers_in_contact": int(active), "rate": round(complained / active, 4) if active else None,
    }


async def first_response(session: AsyncSession, window: Window) -> list[dict[str, Any]]:
    """Per agent: conversations whose first answer they wrote, and the average and worst wait in seconds."""
    dialect = session.get_bind().dialect
    first_in = (select(col(Message.conversation_id).label("conversation_id"),
                       func.min(Message.created_at).label("at"))
                .where(col(Message.direction) == "in").group_by(col(Message.conversation_id)).subquery("first_in"))
    answers = (
        select(col(Message.author_agent_id).label("agent_id"), first_in.c.at.label("asked"),
               col(Message.created_at).label("answered"),
               func.row_number().over(partition_by=col(Message.conversation_id),
                                      order_by=(col(Message.created_at), col(Message.id))).label("n"))
        .join(first_in, first_in.c.conversation_id == col(Message.conversation_id))
        .where(col(Message.direction) == "out", col(Message.author_agent_id).is_not(None),
               col(Message.created_at) >= first_in.c.at, window.has(first_in.c.at))
        .subquery("answers")
    )
    wait = seconds_between(answers.c.asked, answers.c.answered, dialect)
    rows = (await session.execute(
        select(col(Agent.id), col(Agent.name), func.count(), func.avg(wait), func.max(wait))
        .join(answers, answers.c.agent_id == col(Agent.id)).where(answers.c.n == 1)
        .group_by(col(Agent.id), col(Agent.name)).order_by(col(Agent.name)))).all()
    return [{"agent_id": a, "agent": name, "conversations": int(n), "avg_seconds": round(float(avg), 1),
             "max_seconds": round(float(worst), 1)} for a, name, n, avg, worst in rows]


async def workload(session: AsyncSession, window: Window) -> list[dict[str, Any]]:
    """Per active agent: open conversations held, replies sent and interventions open or done in the window."""
    agents = (await session.execute(select(col(Agent.id), col(Agent.name)).where(
        col(Agent.active).is_(True), col(Agent.role) != "marketer").order_by(col(Agent.name)))).all()
    held = await _per_agent(session, select(col(Conversation.assignee_id), func.count()).where(
        col(Conversation.status).in_(["open", "pending", "snoozed"])).group_by(col(Conversation.assignee_id)))
    replies = await _per_agent(session, select(col(Message.author_agent_id), func.count()).where(
        col(Message.direction) == "out", window.has(col(Message.created_at))).group_by(col(Message.author_agent_id)))
    todo = await _per_agent(session, select(col(Intervention.assignee_agent_id), func.count()).where(
        col(Intervention.status).in_(["todo", "doing"])).group_by(col(Intervention.assignee_agent_id)))
    done = await _per_agent(session, select(col(Intervention.assignee_agent_id), func.count()).where(
        col(Intervention.status) == "done", window.has(col(Intervention.done_at)))
        .group_by(col(Intervention.assignee_agent_id)))
    return [{"agent_id": a, "agent": name, "open_conversations": held.get(a, 0), "replies": replies.get(a, 0),
             "interventions_open": todo.get(a, 0), "interventions_done": done.get(a, 0)} for a, name in agents]


async def _per_agent(session: AsyncSession, query: Any) -> dict[int | None, int]:
    return {int(a): int(n) for a, n in (await session.execute(query)).all() if a is not None}


def _day_of(moment: Any, dialect: Dialect, plus_days: int = 0) -> ColumnElement[Any]:
    """The UTC date of a timestamp column, optionally moved by whole days."""
    if dialect.name == "sqlite":
        return func.date(moment, f"+{plus_days} days")
    return cast(moment, Date) + plus_days


async def campaign_conversion(session: AsyncSession, *, within_days: int = 30) -> list[dict[str, Any]]:
    """Per campaign: recipients sent, and those who stayed or bought within `within_days` days after."""
    dialect = session.get_bind().dialect
    r = CampaignRecipient
    sent_day = _day_of(col(r.sent_at), dialect)
    converted = (
        select(col(r.campaign_id).label("campaign_id"), func.count(func.distinct(col(r.customer_id))).label("n"))
        .join(Stay, and_(col(Stay.customer_id) == col(r.customer_id), col(Stay.stay_date) >= sent_day,
                         col(Stay.stay_date) <= _day_of(col(r.sent_at), dialect, within_days)))
        .where(col(r.sent_at).is_not(None)).group_by(col(r.campaign_id)).subquery("converted")
    )
    sent = (select(col(r.campaign_id).label("campaign_id"), func.count().label("n"))
            .where(col(r.sent_at).is_not(None)).group_by(col(r.campaign_id)).subquery("sent"))
    rows = (await session.execute(
        select(col(Campaign.id), col(Campaign.name), col(Campaign.channel), func.coalesce(sent.c.n, 0),
               func.coalesce(converted.c.n, 0))
        .outerjoin(sent, sent.c.campaign_id == col(Campaign.id))
        .outerjoin(converted, converted.c.campaign_id == col(Campaign.id)).order_by(col(Campaign.id)))).all()
    return [{"campaign_id": cid, "campaign": name, "channel": channel, "sent": int(n), "converted": int(k),
             "conversion": round(k / n, 4) if n else None} for cid, name, channel, n, k in rows]


def as_rows(items: list[RetentionRow] | list[CohortRow]) -> list[dict[str, Any]]:
    """Dataclass rows as plain dicts for JSON and CSV."""
    return [asdict(item) for item in items]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _day(value: Any) -> str:
    return _as_date(value).isoformat()


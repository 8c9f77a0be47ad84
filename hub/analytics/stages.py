"""Lifecycle stages with history: change a stage, read the history, answer the stage on a past date."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.core.events import Event, EventHandler, publish
from hub.store.models import LIFECYCLE_STAGES, AuditEvent, Customer, StageChange
from hub.store.types import UTCDateTime, utcnow

STAGE_CHANGED = "customer.stage_changed"
CAUSES = ("created", "agent", "rule", "classifier", "import")


class StageError(ValueError):
    """A stage or cause that does not exist, or a customer that does not."""


def end_of_day(day: date) -> datetime:
    """The last instant of a UTC day, so "the stage on 3 March" includes changes made that day."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) - timedelta(microseconds=1)


async def set_stage(
    session: AsyncSession, customer_id: int, to_stage: str, *, cause: str, actor: str | None = None,
    handlers: Sequence[EventHandler] = (), at: datetime | None = None,
) -> StageChange | None:
    """Move a customer to `to_stage`, record why, and raise `customer.stage_changed`; None if already there."""
    if to_stage not in LIFECYCLE_STAGES:
        raise StageError(f"unknown stage {to_stage!r}; expected one of {', '.join(LIFECYCLE_STAGES)}")
    if cause not in CAUSES:
        raise StageError(f"unknown cause {cause!r}; expected one of {', '.join(CAUSES)}")
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise StageError(f"no customer {customer_id}")
    previous = customer.lifecycle_stage
    if previous == to_stage:
        return None
    when = at or utcnow()
    customer.lifecycle_stage, customer.updated_at = to_stage, when
    change = StageChange(customer_id=customer_id, from_stage=previous, to_stage=to_stage, cause=cause,
                         actor=actor, changed_at=when)
    session.add(change)
    data = {"from_stage": previous, "to_stage": to_stage, "cause": cause}
    session.add(AuditEvent(actor=actor or cause, action="customer.stage_changed", entity="customer",
                           entity_id=customer_id, data=data, at=when))
    await publish(session, Event(STAGE_CHANGED, customer_id, data=data), tuple(handlers))
    return change


async def history(session: AsyncSession, customer_id: int) -> list[StageChange]:
    """Every stage change of a customer, oldest first."""
    rows = await session.execute(select(StageChange).where(col(StageChange.customer_id) == customer_id)
                                 .order_by(col(StageChange.changed_at), col(StageChange.id)))
    return list(rows.scalars())


async def stage_on(session: AsyncSession, customer_id: int, moment: datetime) -> str | None:
    """The stage a customer was in at `moment`: the last change at or before it; None before the first."""
    found = await session.execute(
        select(col(StageChange.to_stage))
        .where(col(StageChange.customer_id) == customer_id, col(StageChange.changed_at) <= moment)
        .order_by(col(StageChange.changed_at).desc(), col(StageChange.id).desc()).limit(1)
    )
    return found.scalar_one_or_none()


async def distribution_on(session: AsyncSession, moments: Sequence[datetime]) -> dict[datetime, dict[str, int]]:
    """Customers per stage at each moment, in one query (merged-away customers are left out)."""
    if not moments:
        return {}
    # Each change holds from its time until the customer's next change (LEAD), so a moment falls
    # inside exactly one interval per customer.
    spans = (
        select(col(StageChange.customer_id), col(StageChange.to_stage), col(StageChange.changed_at),
               func.lead(col(StageChange.changed_at)).over(
                   partition_by=col(StageChange.customer_id),
                   order_by=(col(StageChange.changed_at), col(StageChange.id))).label("until"))
        .subquery("spans")
    )
    # The moments travel as an indexed list, so results map back without re-reading datetimes.
    points = union_all(*(select(literal(n).label("n"), literal(m, UTCDateTime()).label("at"))
                         for n, m in enumerate(moments))).subquery("points")
    query = (
        select(points.c.n, spans.c.to_stage, func.count())
        .join(spans, and_(spans.c.changed_at <= points.c.at,
                          or_(spans.c.until.is_(None), spans.c.until > points.c.at)))
        .join(Customer, col(Customer.id) == spans.c.customer_id)
        .where(col(Customer.merged_into_id).is_(None))
        .group_by(points.c.n, spans.c.to_stage)
    )
    result: dict[datetime, dict[str, int]] = {m: dict.fromkeys(LIFECYCLE_STAGES, 0) for m in moments}
    for n, stage, count in (await session.execute(query)).all():
        result[moments[n]][stage] = int(count)
    return result

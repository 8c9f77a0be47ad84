"""Campaign numbers: totals by status and event, per variant, and a time series for the chart."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from hub.store.models import CampaignEvent, CampaignRecipient, Message

Bucket = Literal["minute", "hour", "day"]
_FORMATS = {"minute": "%Y-%m-%dT%H:%M:00", "hour": "%Y-%m-%dT%H:00:00", "day": "%Y-%m-%dT00:00:00"}
SERIES = ("sent", "failed", "delivered", "bounced", "opened", "clicked", "replied", "unsubscribed")


def bucket_of(column: Any, size: Bucket, dialect: str) -> ColumnElement[Any]:
    """The start of the time bucket of a timestamp, as ISO text, in SQL of this dialect."""
    if dialect == "postgresql":
        return func.to_char(func.date_trunc(size, func.timezone("UTC", column)), 'YYYY-MM-DD"T"HH24:MI:SS')
    return func.strftime(_FORMATS[size], column)


async def totals(session: AsyncSession, campaign_id: int) -> dict[str, Any]:
    """Recipients by status and by variant, events by kind, delivery states from the messages."""
    by_status: dict[str, int] = {}
    per_variant: dict[str, dict[str, int]] = defaultdict(dict)
    rows = await session.execute(
        select(col(CampaignRecipient.status), col(CampaignRecipient.variant), func.count())
        .where(col(CampaignRecipient.campaign_id) == campaign_id)
        .group_by(col(CampaignRecipient.status), col(CampaignRecipient.variant)))
    for status, variant, n in rows:
        by_status[status] = by_status.get(status, 0) + int(n)
        per_variant[variant or "-"][status] = int(n)
    events = await session.execute(
        select(col(CampaignEvent.kind), col(CampaignEvent.variant),
               func.count(func.distinct(col(CampaignEvent.recipient_id))))
        .where(col(CampaignEvent.campaign_id) == campaign_id)
        .group_by(col(CampaignEvent.kind), col(CampaignEvent.variant)))
    by_event: dict[str, int] = {}
    for kind, variant, n in events:
        by_event[kind] = by_event.get(kind, 0) + int(n)
        per_variant[variant or "-"][kind] = int(n)
    delivery = await session.execute(
        select(col(Message.delivery_status), func.count())
        .join(CampaignRecipient, col(CampaignRecipient.message_id) == col(Message.id))
        .where(col(CampaignRecipient.campaign_id) == campaign_id).group_by(col(Message.delivery_status)))
    return {"recipients": sum(by_status.values()), "status": by_status, "events": by_event,
            "delivery": {str(s): int(n) for s, n in delivery}, "variants": dict(per_variant)}


async def series(session: AsyncSession, campaign_id: int, size: Bucket = "hour") -> list[dict[str, Any]]:
    """One point per bucket: sent (when it left, whatever came back later) and every event kind.

    Events count distinct recipients; `failed` and `bounced` are events too, so a bounce that
    arrives days later shows in the bucket it arrived in.
    """
    dialect = session.get_bind().dialect.name
    points: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SERIES, 0))
    sent_b = bucket_of(CampaignRecipient.sent_at, size, dialect)
    rows = await session.execute(
        select(sent_b, func.count())
        .where(col(CampaignRecipient.campaign_id) == campaign_id, col(CampaignRecipient.sent_at).is_not(None))
        .group_by(sent_b))
    for at, n in rows:
        points[str(at)]["sent"] += int(n)
    ev_b = bucket_of(CampaignEvent.at, size, dialect)
    events = await session.execute(
        select(ev_b, col(CampaignEvent.kind), func.count(func.distinct(col(CampaignEvent.recipient_id))))
        .where(col(CampaignEvent.campaign_id) == campaign_id).group_by(ev_b, col(CampaignEvent.kind)))
    for at, kind, n in events:
        if kind in SERIES:
            points[str(at)][kind] += int(n)
    return [{"at": at, **values} for at, values in sorted(points.items())]


def utc_iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None

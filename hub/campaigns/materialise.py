"""Materialisation: turn a running campaign's segment into CampaignRecipient rows, batch by batch.

Keyset over customer ids, ~1,000 at a time; `INSERT ... ON CONFLICT DO NOTHING` on the unique
(campaign, customer, channel) makes it re-runnable and safe with two schedulers at once; a lease
on the campaign row keeps the second one from walking the segment at all in the common case.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.campaigns import segments
from hub.campaigns.config import CampaignConfig, load
from hub.campaigns.queue import BatchQueue
from hub.campaigns.timing import send_after
from hub.store.engine import SessionFactory
from hub.store.models import Campaign, CampaignRecipient, Segment, table
from hub.store.types import utcnow


@dataclass(frozen=True, slots=True)
class Plan:
    """What materialisation needs from a campaign, read once."""

    campaign_id: int
    channel: str
    condition: dict[str, Any]
    start: datetime
    local_time: str | None
    config: CampaignConfig


def bucket(campaign_id: int, customer_id: int) -> float:
    """A stable number in [0, 1) per customer and campaign, for the A/B split."""
    digest = hashlib.blake2b(f"{campaign_id}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_variant(config: CampaignConfig, campaign_id: int, customer_id: int) -> tuple[str | None, str]:
    """(variant, status): test-share customers get a variant now, the rest are held for the winner."""
    ab = config.ab
    if ab is None:
        return None, "queued"
    if (winner := config.state.get("winner")) is not None:
        return str(winner), "queued"
    u = bucket(campaign_id, customer_id)
    if u >= ab.test_share:
        return None, "held"
    names = sorted(ab.variants)
    return names[min(int(u / ab.test_share * len(names)), len(names) - 1)], "queued"


def rows_for(plan: Plan, found: Sequence[tuple[int, str, str]], now: datetime) -> list[dict[str, Any]]:
    """The recipient rows of one keyset batch (pure)."""
    quiet = plan.config.quiet()
    rows = []
    for customer_id, address, tz in found:
        variant, status = assign_variant(plan.config, plan.campaign_id, customer_id)
        due = send_after(plan.start, tz, local_time=plan.local_time, quiet=quiet)
        rows.append({"campaign_id": plan.campaign_id, "customer_id": customer_id, "channel": plan.channel,
                     "address": address, "variant": variant, "status": status, "send_after": due,
                     "enqueued_at": max(now, due), "attempts": 0, "created_at": now})
    return rows


_INSERT: dict[str, Any] = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(table(CampaignRecipient))
    .on_conflict_do_nothing(index_elements=["campaign_id", "customer_id", "channel"])
    .returning(table(CampaignRecipient).c.id, table(CampaignRecipient).c.status,
               table(CampaignRecipient).c.send_after)
    for dialect in (postgresql, sqlite)
}


async def insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> list[tuple[int, str, datetime]]:
    """Insert rows, skipping ones that exist; returns (id, status, send_after) of those inserted.

    One cached statement run as an executemany: SQLAlchemy batches it into multi-row INSERTs
    with RETURNING ("insertmanyvalues") instead of compiling a 1,000-row VALUES list per batch.
    """
    if not rows:
        return []
    stmt = _INSERT[session.get_bind().dialect.name]
    found = await session.execute(stmt, rows)
    return [(int(r[0] or 0), str(r[1]), r[2] or utcnow()) for r in found]


async def _plan(session: AsyncSession, campaign: Campaign) -> Plan:
    assert campaign.id is not None
    condition: dict[str, Any] = {}
    if campaign.segment_id is not None:
        segment = await session.get(Segment, campaign.segment_id)
        condition = dict(segment.condition) if segment is not None else {"any": []}
    return Plan(campaign.id, campaign.channel, condition, campaign.scheduled_at or campaign.started_at or utcnow(),
                campaign.local_send_time, load(campaign.settings))


# Batches after which the recipient table's statistics are refreshed (and once at the end): the
# table grows 4x between two refreshes at most.
_ANALYSE_AFTER = frozenset(4**k for k in range(16))


async def _take_lease(factory: SessionFactory, campaign_id: int, now: datetime, seconds: float) -> bool:
    async with factory() as session, session.begin():
        taken = await session.execute(
            update(Campaign).where(col(Campaign.id) == campaign_id, col(Campaign.status) == "running",
                                   col(Campaign.materialised_at).is_(None),
                                   or_(col(Campaign.lease_until).is_(None), col(Campaign.lease_until) < now))
            .values(lease_until=now + timedelta(seconds=seconds)).execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


async def enqueue_inserted(queue: BatchQueue, campaign_id: int, inserted: Sequence[tuple[int, str, datetime]],
                           now: datetime, job_size: int = 1000) -> None:
    """Queue due rows now and future ones for their moment: jobs of up to `job_size` rows per send time."""
    groups: dict[datetime | None, list[int]] = defaultdict(list)
    for rid, status, due in inserted:
        if status == "queued":
            groups[due if due > now else None].append(rid)
    for at, ids in groups.items():
        ids.sort()
        for start in range(0, len(ids), job_size):
            await queue.enqueue(campaign_id, ids[start:start + job_size], tag="m", at=at)


async def materialise(factory: SessionFactory, queue: BatchQueue, campaign_id: int, *, batch_size: int = 1000,
                      lease_seconds: float = 60.0, now: datetime | None = None, job_size: int | None = None) -> int:
    """Walk the segment from the campaign's cursor; returns rows inserted by this call."""
    now = now or utcnow()
    if not await _take_lease(factory, campaign_id, now, lease_seconds):
        return 0
    total, batches = 0, 0
    while True:
        async with factory() as session, session.begin():
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.status != "running":
                return total  # paused or cancelled: the cursor keeps our place
            plan = await _plan(session, campaign)
            found = await segments.batch(session, plan.condition, plan.channel, after=campaign.cursor, size=batch_size,
                                         now=now)
            inserted = await insert_new(session, rows_for(plan, found, now))
            values: dict[str, Any] = {"lease_until": utcnow() + timedelta(seconds=lease_seconds)}
            if found:
                values["cursor"] = found[-1][0]
            else:
                values.update(materialised_at=utcnow(), lease_until=None)
            await session.execute(update(Campaign).where(col(Campaign.id) == campaign_id).values(**values)
                                  .execution_options(synchronize_session=False))
        await enqueue_inserted(queue, campaign_id, inserted, now, job_size or batch_size)
        total, batches = total + len(inserted), batches + 1
        if (inserted and batches in _ANALYSE_AFTER) or (total and not found):
            await analyse(factory)
        if not found:
            return total


async def analyse(factory: SessionFactory) -> None:
    """Refresh PostgreSQL's statistics of the recipient table after a bulk insert.

    Sending starts while the segment is still being walked, long before autovacuum's next look:
    without statistics a claim by row ids can be planned as a walk over every queued row of the
    campaign (a cost that grows with the campaign) instead of primary-key lookups.
    """
    async with factory() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("ANALYZE campaignrecipient"))


async def pending_campaigns(factory: SessionFactory) -> list[int]:
    """Running campaigns whose segment has not been walked to the end."""
    async with factory() as session:
        rows = await session.execute(select(col(Campaign.id)).where(col(Campaign.status) == "running",
                                                               col(Campaign.materialised_at).is_(None)))
        return [int(r or 0) for r in rows.scalars()]

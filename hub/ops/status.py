"""What the hub is doing right now, read from the database and Redis: `hub status` and /metrics share it.

Everything here is computed from shared state (not one process's memory), so any web process
or the CLI reports the same picture for the whole deployment.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.runtime import Runtime
from hub.store.models import Campaign, CampaignRecipient, MailboxCheckpoint, OutboxItem, QuarantineItem
from hub.store.types import utcnow

ARQ_HEALTH_KEY = "arq:queue:health-check"
ARQ_QUEUE_KEY = "arq:queue"
HEARTBEAT_PREFIX = "hub:worker:"
# Only the states whose counts stay small: `done` and `failed` grow for ever and are not a queue.
LIVE_STATES = ("queued", "running", "dead")
ACTIVE_CAMPAIGNS = ("scheduled", "running", "paused")


@dataclass
class Snapshot:
    """One reading of queues, stuck work, IMAP progress, campaigns and workers."""

    at: datetime
    outbox: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> status -> count
    oldest_queued_s: dict[str, float] = field(default_factory=dict)  # kind -> age of the oldest due item
    stuck: int = 0
    stuck_ids: list[int] = field(default_factory=list)
    quarantine: dict[str, int] = field(default_factory=dict)  # stage -> items not replayed
    mailboxes: dict[str, float] = field(default_factory=dict)  # mailbox -> seconds since its checkpoint moved
    campaigns: dict[int, dict[str, int]] = field(default_factory=dict)  # campaign id -> status -> recipients
    arq_queued: int | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)
    arq_health: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["campaigns"] = {str(k): v for k, v in self.campaigns.items()}
        return data


async def _outbox(session: AsyncSession, snap: Snapshot, stuck_after: timedelta) -> None:
    rows = await session.execute(
        select(col(OutboxItem.kind), col(OutboxItem.status), func.count())
        .where(col(OutboxItem.status).in_(LIVE_STATES)).group_by(col(OutboxItem.kind), col(OutboxItem.status))
    )
    for kind, status, count in rows.all():
        snap.outbox.setdefault(kind, {})[status] = int(count)
    due = await session.execute(
        select(col(OutboxItem.kind), func.min(col(OutboxItem.available_at)))
        .where(col(OutboxItem.status) == "queued", col(OutboxItem.available_at) <= snap.at)
        .group_by(col(OutboxItem.kind))
    )
    for kind, oldest in due.all():
        if oldest is not None:
            snap.oldest_queued_s[kind] = _age(snap.at, oldest)
    stuck = await session.execute(
        select(col(OutboxItem.id)).where(col(OutboxItem.status) == "running",
                                          col(OutboxItem.claimed_at) < snap.at - stuck_after)
        .order_by(col(OutboxItem.id)).limit(50)
    )
    snap.stuck_ids = [i for i in stuck.scalars().all() if i is not None]
    snap.stuck = len(snap.stuck_ids)


def _age(now: datetime, then: datetime) -> float:
    return max(0.0, (now - then).total_seconds())


async def _quarantine_and_mail(session: AsyncSession, snap: Snapshot) -> None:
    rows = await session.execute(
        select(col(QuarantineItem.stage), func.count()).where(col(QuarantineItem.replayed_at).is_(None))
        .group_by(col(QuarantineItem.stage))
    )
    snap.quarantine = {stage: int(n) for stage, n in rows.all()}
    boxes = await session.execute(select(col(MailboxCheckpoint.mailbox), col(MailboxCheckpoint.updated_at)))
    snap.mailboxes = {name: _age(snap.at, at) for name, at in boxes.all()}


async def _campaigns(session: AsyncSession, snap: Snapshot) -> None:
    rows = await session.execute(
        select(col(CampaignRecipient.campaign_id), col(CampaignRecipient.status), func.count())
        .join(Campaign, col(Campaign.id) == col(CampaignRecipient.campaign_id))
        .where(col(Campaign.status).in_(ACTIVE_CAMPAIGNS))
        .group_by(col(CampaignRecipient.campaign_id), col(CampaignRecipient.status))
    )
    for campaign_id, status, count in rows.all():
        snap.campaigns.setdefault(int(campaign_id), {})[status] = int(count)


async def _workers(redis: Redis, snap: Snapshot) -> None:
    snap.arq_queued = int(await redis.zcard(ARQ_QUEUE_KEY))
    health = await redis.get(ARQ_HEALTH_KEY)
    snap.arq_health = health.decode() if isinstance(health, bytes) else health
    keys = [k async for k in redis.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100)]
    for value in await redis.mget(keys) if keys else []:
        if value is not None:
            snap.workers.append(json.loads(value))


async def snapshot(runtime: Runtime) -> Snapshot:
    """Read the state of the deployment; Redis trouble is reported, not raised."""
    snap = Snapshot(at=utcnow())
    async with runtime.factory() as session:
        await _outbox(session, snap, timedelta(seconds=runtime.settings.outbox_stuck_seconds))
        await _quarantine_and_mail(session, snap)
        await _campaigns(session, snap)
    if runtime.redis is not None:
        try:
            await _workers(runtime.redis, snap)
        except (RedisError, OSError) as exc:
            snap.arq_health = f"redis error: {type(exc).__name__}"
    return snap


def heartbeat_key() -> str:
    """This process's heartbeat key: host and pid, so each worker counts once."""
    return f"{HEARTBEAT_PREFIX}{socket.gethostname()}:{os.getpid()}"


def render(snap: Snapshot) -> str:
    """`hub status` as text: one section per concern, worst news first."""
    lines = [f"hub status at {snap.at:%Y-%m-%d %H:%M:%S} UTC"]
    if snap.workers or snap.arq_health is not None:
        lines.append(f"workers alive: {len(snap.workers)}  (arq queue: {snap.arq_queued}; "
                     f"health: {snap.arq_health or 'no health-check key'})")
        lines += [f"  {w.get('host')}:{w.get('pid')}  jobs={w.get('jobs', 0)}  since {w.get('started')}"
                  for w in snap.workers]
    else:
        lines.append("workers: in-process (no HUB_REDIS_URL)")
    lines.append(f"stuck outbox items (running too long): {snap.stuck}"
                 + (f"  ids: {', '.join(map(str, snap.stuck_ids))}" if snap.stuck_ids else ""))
    lines.append("outbox:" if snap.outbox else "outbox: empty")
    for kind, counts in sorted(snap.outbox.items()):
        oldest = snap.oldest_queued_s.get(kind)
        age = f"  oldest due {oldest:.0f}s" if oldest is not None else ""
        lines.append(f"  {kind:<28} " + " ".join(f"{s}={n}" for s, n in sorted(counts.items())) + age)
    lines.append("IMAP mailboxes:" if snap.mailboxes else "IMAP mailboxes: none polled yet")
    lines += [f"  {name:<40} last progress {age:.0f}s ago" for name, age in sorted(snap.mailboxes.items())]
    if snap.quarantine:
        lines.append("quarantine: " + ", ".join(f"{s}={n}" for s, n in sorted(snap.quarantine.items())))
    for campaign_id, counts in sorted(snap.campaigns.items()):
        lines.append(f"campaign {campaign_id}: " + " ".join(f"{s}={n}" for s, n in sorted(counts.items())))
    return "\n".join(lines)

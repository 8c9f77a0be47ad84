"""Sending one batch: claim each row (queued -> sending), check, render, send, record.

arq is at-least-once and workers die, so: the claim is a conditional UPDATE (two workers never
hold the same row), consent/suppression/frequency are checked after the claim, the campaign's
status is re-read before every chunk (pause and cancel act within one chunk), and a row stays
`sending` only while a send is in flight; the scheduler re-queues rows of a lost worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select, update
from sqlmodel import col

from hub.campaigns import consent, lifecycle
from hub.campaigns.config import CampaignConfig, load
from hub.campaigns.prepare import Prepared, prepare
from hub.campaigns.queue import BatchQueue
from hub.campaigns.throttle import Throttle
from hub.core.envelopes import Outbound, SendResult
from hub.core.jobs import PermanentError, Sender, TransientError, backoff_seconds
from hub.settings import Settings
from hub.store.engine import SessionFactory
from hub.store.models import Campaign, CampaignEvent, CampaignRecipient, Message
from hub.store.types import utcnow

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class SendContext:
    """What sending needs, built once per process from the runtime."""

    factory: SessionFactory
    senders: Mapping[str, Sender]
    throttle: Throttle
    queue: BatchQueue
    settings: Settings
    worker: str = WORKER_ID
    # Rows are claimed only when this process can send them soon: a claimed row waiting for a
    # connection would outlive its lease and widen the duplicate window after a crash.
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(3))


@dataclass
class Tally:
    """Outcomes of one batch."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    claimed: int = 0
    stopped: str | None = None
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried, "skipped": self.skipped,
                "claimed": self.claimed, "stopped": self.stopped}


async def claim(sc: SendContext, campaign_id: int, ids: Sequence[int], now: datetime) -> list[int]:
    """Take the rows still queued and due; the rest belong to someone else or are done."""
    async with sc.factory() as session, session.begin():
        rows = await session.execute(
            update(CampaignRecipient)
            .where(col(CampaignRecipient.id).in_(list(ids)), col(CampaignRecipient.campaign_id) == campaign_id,
                   col(CampaignRecipient.status) == "queued",
                   or_(col(CampaignRecipient.send_after).is_(None), col(CampaignRecipient.send_after) <= now))
            .values(status="sending", claimed_at=now, worker=sc.worker, attempts=CampaignRecipient.attempts + 1)
            .returning(col(CampaignRecipient.id))
            .execution_options(synchronize_session=False)
        )
        return sorted(int(r or 0) for r in rows.scalars())


async def _campaign(sc: SendContext, campaign_id: int) -> Campaign | None:
    async with sc.factory() as session:
        return await session.get(Campaign, campaign_id)


async def _send_one(sc: SendContext, item: Outbound, rate: float | None) -> SendResult:
    """One send; every failure becomes a SendResult so one bad row never strands the chunk."""
    sender = sc.senders.get(item.channel.value)
    if sender is None:
        return SendResult(ok=False, detail=f"no sender configured for {item.channel.value}", retry_after=60)
    try:
        await sc.throttle.acquire(item.channel.value, rate)
        return await sender.send(item)
    except TransientError as exc:
        return SendResult(ok=False, detail=str(exc), retry_after=exc.retry_after)
    except PermanentError as exc:
        return SendResult(ok=False, detail=str(exc), permanent=True)
    except (RedisError, OSError, TimeoutError) as exc:
        return SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # one catch point per send: an unknown crash is retried, then failed
        log.exception("campaign send of message %s crashed", item.message_id)
        return SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}")


async def _record(sc: SendContext, prepared: Prepared, results: Sequence[SendResult], config: CampaignConfig,
                  tally: Tally) -> None:
    now = utcnow()
    rows: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    retry: list[tuple[int, int, datetime]] = []
    bounced: list[int] = []
    failed: list[CampaignEvent] = []
    for item, result in zip(prepared.items, results, strict=True):
        row: dict[str, Any] = {"id": item.recipient_id, "claimed_at": None, "worker": None}
        if result.ok:
            tally.sent += 1
            row.update(status="sent", sent_at=now, error=None)
            messages.append({"id": item.outbound.message_id, "delivery_status": "sent",
                             "provider_id": result.provider_id})
        elif result.permanent or item.attempts >= config.max_attempts:
            tally.failed += 1
            row.update(status="failed", error=f"{result.code or ''} {result.detail}".strip()[:2000])
            messages.append({"id": item.outbound.message_id, "delivery_status": "failed",
                             "delivery_detail": result.detail[:2000]})
            failed.append(CampaignEvent(campaign_id=prepared.campaign_id, recipient_id=item.recipient_id,
                                        variant=item.outbound.meta.get("variant"), kind="failed",
                                        detail=row["error"], at=now))
            if result.permanent and _hard_bounce(item.outbound, result):
                bounced.append(item.recipient_id)
        else:
            tally.retried += 1
            wait = result.retry_after or backoff_seconds(item.attempts)
            due = now + timedelta(seconds=wait)
            row.update(status="queued", send_after=due, enqueued_at=due, error=result.detail[:2000])
            retry.append((item.recipient_id, item.attempts, due))
        rows.append(row)
    async with sc.factory() as session, session.begin():
        await _bulk_update(session, CampaignRecipient, rows)
        await _bulk_update(session, Message, messages)
        session.add_all(failed)
        for rid in bounced:
            recipient = await session.get(CampaignRecipient, rid)
            if recipient is not None:
                await consent.record_bounce(session, recipient, "permanent failure at send")
    await _enqueue_retries(sc, prepared.campaign_id, retry)


def _hard_bounce(item: Outbound, result: SendResult) -> bool:
    """An SMTP 5xx for the recipient means the address is dead: suppress it everywhere."""
    return item.channel.value == "email" and (result.code or "").startswith("5")


async def _bulk_update(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    # ORM bulk UPDATE by primary key groups rows by their key set; one executemany per group.
    by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_keys.setdefault(tuple(sorted(row)), []).append(row)
    for group in by_keys.values():
        await session.execute(update(model), group)


async def _enqueue_retries(sc: SendContext, campaign_id: int, retry: list[tuple[int, int, datetime]]) -> None:
    if not retry:
        return
    at = max(due for _, _, due in retry)
    attempt = max(a for _, a, _ in retry)
    await sc.queue.enqueue(campaign_id, sorted(rid for rid, _, _ in retry), tag=f"r{attempt}", at=at)


async def _maybe_pause(sc: SendContext, campaign_id: int, config: CampaignConfig, tally: Tally) -> bool:
    attempts = tally.sent + tally.failed
    if attempts < config.error_min_sample or tally.failed / attempts <= config.error_threshold:
        return False
    await auto_pause(sc.factory, campaign_id, f"error rate {tally.failed}/{attempts} in one batch")
    return True


async def auto_pause(factory: SessionFactory, campaign_id: int, reason: str) -> None:
    """Pause a campaign whose sends fail too often; an agent resumes it after looking."""
    async with factory() as session, session.begin():
        try:
            await lifecycle.transition(session, campaign_id, "pause", actor="system", reason=reason)
        except lifecycle.TransitionError:
            return
    log.warning("campaign %s auto-paused: %s", campaign_id, reason)


async def _one_chunk(sc: SendContext, campaign: Campaign, chunk: Sequence[int], tally: Tally, now: datetime) -> None:
    assert campaign.id is not None
    claimed = await claim(sc, campaign.id, chunk, now)
    tally.claimed += len(claimed)
    if not claimed:
        return
    config = load(campaign.settings)
    prepared = await prepare(sc.factory, sc.settings, campaign, config, claimed, now)
    tally.skipped += prepared.skipped
    tally.failed += prepared.failed
    rate = config.rate
    results = await asyncio.gather(*(_send_one(sc, item.outbound, rate) for item in prepared.items))
    await _record(sc, prepared, results, config, tally)


async def send_batch(sc: SendContext, campaign_id: int, ids: Sequence[int], *, now: datetime | None = None) -> Tally:
    """Send the rows of one batch job, chunk by chunk, re-reading the campaign before each."""
    tally = Tally()
    size = sc.settings.campaign_chunk_size
    for start in range(0, len(ids), size):
        campaign = await _campaign(sc, campaign_id)
        if campaign is None or campaign.status != lifecycle.RUNNING:
            tally.stopped = campaign.status if campaign else "missing"
            break
        async with sc.slots:
            await _one_chunk(sc, campaign, ids[start:start + size], tally, now or utcnow())
        if await _maybe_pause(sc, campaign_id, load(campaign.settings), tally):
            tally.stopped = "auto-paused"
            break
    return tally


async def revive_lost(factory: SessionFactory, lease_seconds: float, now: datetime | None = None) -> int:
    """Re-queue rows claimed longer ago than the lease: their worker died mid-send."""
    now = now or utcnow()
    async with factory() as session, session.begin():
        done = await session.execute(
            update(CampaignRecipient)
            .where(and_(col(CampaignRecipient.status) == "sending",
                        col(CampaignRecipient.claimed_at) < now - timedelta(seconds=lease_seconds)))
            .values(status="queued", worker=None, claimed_at=None, enqueued_at=None, error="worker lost; re-queued")
            .execution_options(synchronize_session=False)
        )
        return int(done.rowcount)  # type: ignore[attr-defined]


async def due_rows(factory: SessionFactory, campaign_id: int, stale_seconds: float, now: datetime,
                   limit: int) -> list[int]:
    """Queued, due rows whose job is overdue (lost with Redis, or never enqueued)."""
    async with factory() as session:
        rows = await session.execute(
            select(col(CampaignRecipient.id))
            .where(col(CampaignRecipient.campaign_id) == campaign_id, col(CampaignRecipient.status) == "queued",
                   or_(col(CampaignRecipient.send_after).is_(None), col(CampaignRecipient.send_after) <= now),
                   or_(col(CampaignRecipient.enqueued_at).is_(None),
                       col(CampaignRecipient.enqueued_at) < now - timedelta(seconds=stale_seconds)))
            .order_by(col(CampaignRecipient.id)).limit(limit)
        )
        return [int(r or 0) for r in rows.scalars()]

"""Sending one batch: claim each chunk's rows (queued -> sending), check, render, send, record.

arq is at-least-once and workers die, so: the claim is a conditional UPDATE that also requires
the campaign to be running (two workers never hold the same row; pause and cancel act at the
next chunk on every worker), consent/suppression/frequency are checked in the claim's
transaction, and a row stays `sending` only while a send is in flight; the scheduler re-queues
rows of a lost worker. With several workers, a batch job that is done
with its rows pulls more of the campaign's due rows into its process's spare slots, so an idle
worker helps one that was handed more batches than it can run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select, update
from sqlmodel import col

from hub.campaigns import lifecycle
from hub.campaigns.config import CampaignConfig
from hub.campaigns.prepare import Item, SendPlan, claim_and_prepare, load_plan
from hub.campaigns.queue import BatchQueue
from hub.campaigns.record import Sent, record
from hub.campaigns.throttle import Throttle
from hub.core.envelopes import Outbound, SendResult
from hub.core.jobs import PermanentError, Sender, TransientError
from hub.settings import Settings
from hub.store.engine import SessionFactory
from hub.store.models import Campaign, CampaignRecipient
from hub.store.types import utcnow

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
PULL_SECONDS = 30.0  # how long a batch job keeps pulling more rows (far inside arq's job timeout)


def job_size(settings: Settings) -> int:
    """Rows per batch job: a couple of chunks, so the batches of a campaign spread over the workers."""
    return 2 * settings.campaign_chunk_size


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
    # The queue is shared with other workers (arq): batch jobs pull more rows into spare slots.
    share: bool = False
    active: int = 0  # chunks of this process being claimed, sent or recorded
    # Per campaign, the lowest row id this process pulled: the next pull looks below it (rows
    # re-queued above it come back through their own batch jobs and the sweeper).
    pulled_below: dict[int, int] = field(default_factory=dict)
    waiting: int = 0  # batches of this process waiting for a slot


@dataclass
class Tally:
    """Outcomes of one batch."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    claimed: int = 0
    stopped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried, "skipped": self.skipped,
                "claimed": self.claimed, "stopped": self.stopped}


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


async def _record(sc: SendContext, plan: SendPlan, sent: list[Sent], tally: Tally) -> None:
    done = await record(sc.factory, plan.campaign_id, sent, max_attempts=plan.config.max_attempts)
    tally.sent += done.sent
    tally.failed += done.failed
    tally.retried += len(done.retry)
    await _enqueue_retries(sc, plan.campaign_id, done.retry)


async def _send_all(sc: SendContext, plan: SendPlan, items: list[Item], tally: Tally) -> None:
    """Send the chunk's messages at once (the sender's pool bounds them) and record every answer.

    When the job is cancelled (shutdown, arq timeout) the answers already in are still recorded:
    an unrecorded accepted message would be sent again after the lease.
    """
    sends = [asyncio.ensure_future(_send_one(sc, item.outbound, plan.config.rate)) for item in items]
    try:
        results = await asyncio.gather(*sends)
    except asyncio.CancelledError:
        answered = [Sent(item.recipient_id, item.attempts, item.outbound, task.result())
                    for item, task in zip(items, sends, strict=True) if task.done() and not task.cancelled()]
        await asyncio.shield(_record(sc, plan, answered, tally))
        raise
    await _record(sc, plan, [Sent(item.recipient_id, item.attempts, item.outbound, result)
                             for item, result in zip(items, results, strict=True)], tally)


async def _one_chunk(sc: SendContext, plan: SendPlan, chunk: Sequence[int] | None, tally: Tally,
                     now: datetime) -> bool:
    """Claim, send and record one chunk; False once the campaign is no longer running."""
    below = sc.pulled_below.get(plan.campaign_id) if chunk is None else None
    prepared = await claim_and_prepare(sc.factory, sc.settings, plan, chunk, now, sc.worker, below)
    if prepared is None:
        return False
    if chunk is None and prepared.lowest is not None:
        sc.pulled_below[plan.campaign_id] = min(prepared.lowest, below or prepared.lowest)
    tally.claimed += prepared.claimed
    tally.skipped += prepared.skipped
    tally.failed += prepared.failed
    if prepared.items:
        await _send_all(sc, plan, prepared.items, tally)
    return True


async def _plan(sc: SendContext, campaign_id: int) -> tuple[SendPlan | None, str]:
    """The campaign's send plan, or None and its status when it is not running."""
    async with sc.factory() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None or campaign.status != lifecycle.RUNNING:
            return None, campaign.status if campaign else "missing"
        return await load_plan(session, campaign, sc.settings), lifecycle.RUNNING


async def _chunk_in_slot(sc: SendContext, plan: SendPlan, ids: Sequence[int] | None, tally: Tally,
                         now: datetime | None) -> bool:
    """One chunk in a slot this process already holds; False once the campaign is not running."""
    sc.active += 1
    try:
        return await _one_chunk(sc, plan, ids, tally, now or utcnow())
    finally:
        sc.active -= 1
        sc.slots.release()


async def _slot(sc: SendContext) -> None:
    sc.waiting += 1
    try:
        await sc.slots.acquire()
    finally:
        sc.waiting -= 1


def _spare(sc: SendContext) -> int:
    """Slots no batch of this process is using or waiting for."""
    if sc.waiting:
        return 0
    return max(0, sc.settings.campaign_parallel_chunks - sc.active)


async def _pull(sc: SendContext, plan: SendPlan, tally: Tally, until: float) -> None:
    """Fill this process's spare slots with the campaign's next due rows, whoever's batch they are in.

    arq hands batches to whichever worker polls first, so one worker can hold many while another
    idles; pulling from the table keeps every worker busy, and the conditional claim keeps each
    row to one of them (the batch holding it later finds it taken and moves on).
    """
    async def lane() -> None:
        while time.monotonic() < until and not sc.waiting and not sc.slots.locked():
            await sc.slots.acquire()
            before = tally.claimed
            if not await _chunk_in_slot(sc, plan, None, tally, None) or tally.claimed == before:
                return
            if await _maybe_pause(sc, plan.campaign_id, plan.config, tally):
                return

    await asyncio.gather(*(lane() for _ in range(_spare(sc))))


async def send_batch(sc: SendContext, campaign_id: int, ids: Sequence[int], *, now: datetime | None = None) -> Tally:
    """Send the rows of one batch job, chunk by chunk; every claim checks the campaign still runs.

    With a queue shared by several workers the job then pulls more due rows of the campaign
    while this process has slots nobody waits for (see _pull), for up to PULL_SECONDS.
    """
    tally = Tally()
    started = time.monotonic()
    plan, status = await _plan(sc, campaign_id)
    if plan is None:
        tally.stopped = status
        return tally
    size = sc.settings.campaign_chunk_size
    for start in range(0, len(ids), size):
        await _slot(sc)
        if not await _chunk_in_slot(sc, plan, ids[start:start + size], tally, now):
            tally.stopped = "not running"
            return tally
        if await _maybe_pause(sc, campaign_id, plan.config, tally):
            tally.stopped = "auto-paused"
            return tally
    if sc.share:
        await _pull(sc, plan, tally, started + PULL_SECONDS)
    return tally


async def revive_lost(factory: SessionFactory, lease_seconds: float, now: datetime | None = None) -> int:
    """Re-queue rows claimed longer ago than the lease: their worker died mid-send.

    Only rows of running or paused campaigns, looked up by (campaign, status): the few `sending`
    rows, never a scan of every recipient of every campaign.
    """
    now = now or utcnow()
    live = select(col(Campaign.id)).where(col(Campaign.status).in_((lifecycle.RUNNING, lifecycle.PAUSED)))
    async with factory() as session, session.begin():
        done = await session.execute(
            update(CampaignRecipient)
            .where(and_(col(CampaignRecipient.campaign_id).in_(live), col(CampaignRecipient.status) == "sending",
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

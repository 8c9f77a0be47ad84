"""IMAP polling: fetch above the stored UID checkpoint, ingest each mail, then advance the checkpoint.

The checkpoint moves only after the ingest commit of each fetched batch, so a crash anywhere
re-fetches at most the batch in flight, which the Message-ID dedupe turns into no-ops. A new
UIDVALIDITY resets the checkpoint to 0 for the same reason: re-reading the folder is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from hub.channels.email.inbound import EmailOutcome, ingest_raw_many
from hub.channels.email.mailbox import ImapError, ImapSession, MailboxConfig
from hub.ops.context import traced
from hub.settings import Settings, SettingsError
from hub.store.engine import SessionFactory
from hub.store.models import MailboxCheckpoint
from hub.store.types import utcnow

if TYPE_CHECKING:
    from hub.runtime import Runtime

log = logging.getLogger(__name__)


def mailboxes_from_settings(settings: Settings) -> list[MailboxConfig]:
    """The single HUB_IMAP_* mailbox (when HUB_IMAP_HOST is set) plus each of HUB_IMAP_MAILBOXES."""
    defaults: dict[str, Any] = {
        "port": settings.imap_port, "tls": settings.imap_tls, "folder": settings.imap_mailbox,
        "processed_folder": settings.imap_processed_folder, "idle": settings.imap_idle,
        "poll_seconds": settings.imap_poll_seconds, "timeout": settings.imap_timeout_seconds,
        "address": settings.imap_address or settings.smtp_from,
    }
    configs: list[MailboxConfig] = []
    try:
        if settings.imap_host:
            configs.append(MailboxConfig.from_dict({
                "host": settings.imap_host, "username": settings.imap_username or "",
                "password": settings.imap_password or "",
            }, defaults))
        for index, entry in enumerate(settings.imap_mailboxes):
            try:
                configs.append(MailboxConfig.from_dict(entry, defaults))
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"bad configuration: HUB_IMAP_MAILBOXES[{index}]: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"bad configuration: HUB_IMAP_*: {exc}") from None
    return configs


async def checkpoint(factory: SessionFactory, key: str, uidvalidity: int) -> int:
    """The last ingested UID of this mailbox, reset to 0 when the server's UIDVALIDITY changed."""
    for _ in range(3):
        try:
            async with factory() as session, session.begin():
                row = (await session.execute(
                    select(MailboxCheckpoint).where(col(MailboxCheckpoint.mailbox) == key)
                )).scalar_one_or_none()
                if row is None:
                    session.add(MailboxCheckpoint(mailbox=key, uidvalidity=uidvalidity, last_uid=0,
                                                  updated_at=utcnow()))
                    return 0
                if row.uidvalidity != uidvalidity:
                    log.warning("mailbox %s: UIDVALIDITY %s -> %s, re-reading it (duplicates are skipped)",
                                key, row.uidvalidity, uidvalidity)
                    row.uidvalidity, row.last_uid, row.updated_at = uidvalidity, 0, utcnow()
                return row.last_uid
        except IntegrityError:
            continue  # another poller created the row first: read theirs
    raise RuntimeError(f"could not create the checkpoint of mailbox {key}")


async def advance(factory: SessionFactory, key: str, uidvalidity: int, uid: int) -> None:
    """Move the checkpoint forward to `uid` (never backwards, never across a UIDVALIDITY change)."""
    async with factory() as session, session.begin():
        await session.execute(
            update(MailboxCheckpoint)
            .where(col(MailboxCheckpoint.mailbox) == key, col(MailboxCheckpoint.uidvalidity) == uidvalidity,
                   col(MailboxCheckpoint.last_uid) < uid)
            .values(last_uid=uid, updated_at=utcnow())
        )


async def _take(runtime: Runtime, box: ImapSession, uidvalidity: int, uids: list[int]) -> list[EmailOutcome]:
    """Fetch, ingest, checkpoint and file one batch of UIDs; the outcome of each fetched mail."""
    cfg = box.config
    # A new trace id per batch (one ingest transaction), timed from the fetch: its log lines and
    # the jobs its mails queue (auto-replies...) share it, as a webhook's do with its request id.
    with traced(None, time.time()):
        fetched = await box.fetch(uids)
        if not fetched:
            return []  # expunged by someone else meanwhile
        mails = [(raw, f"imap:{cfg.key};UIDVALIDITY={uidvalidity};UID={uid}") for uid, raw in fetched]
        results = await ingest_raw_many(runtime, mails, mailbox=cfg.address)
        await advance(runtime.factory, cfg.key, uidvalidity, fetched[-1][0])  # after the commit, never before
        for (uid, _), result in zip(fetched, results, strict=True):
            if cfg.processed_folder and result.outcome is not EmailOutcome.QUARANTINED:
                await box.move(uid, cfg.processed_folder)
        return [result.outcome for result in results]


async def drain(runtime: Runtime, box: ImapSession, stop: asyncio.Event | None = None) -> dict[str, int]:
    """Ingest every message above the checkpoint; return counts per outcome."""
    cfg = box.config
    uidvalidity = await box.select()
    last = await checkpoint(runtime.factory, cfg.key, uidvalidity)
    uids = await box.uids_after(last)
    counts: dict[str, int] = {}
    for start in range(0, len(uids), cfg.batch):
        for outcome in await _take(runtime, box, uidvalidity, uids[start:start + cfg.batch]):
            counts[outcome.value] = counts.get(outcome.value, 0) + 1
        if stop is not None and stop.is_set():
            break
    return counts


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_mailbox(runtime: Runtime, config: MailboxConfig, stop: asyncio.Event) -> None:
    """Keep one mailbox ingested until `stop` is set: drain, wait (IDLE or poll), reconnect with backoff."""
    delay = config.backoff_min
    while not stop.is_set():
        box = ImapSession(config)
        try:
            await box.connect()
            while not stop.is_set():
                counts = await drain(runtime, box, stop)
                delay = config.backoff_min  # a full drain proves the server and the store work
                if counts:
                    log.info("mailbox %s: %s", config.key, counts)
                await box.wait_for_news(stop)
        except ImapError as exc:
            log.warning("mailbox %s: %s; reconnecting in %.1fs", config.key, exc, delay)
        except Exception:  # one catch point: the poller outlives any failure (database down, a bug)
            log.exception("mailbox %s failed; reconnecting in %.1fs", config.key, delay)
        finally:
            await box.close()
        await _pause(stop, delay)
        delay = min(delay * 2, config.backoff_max)


async def run_mailboxes(runtime: Runtime, stop: asyncio.Event, configs: list[MailboxConfig] | None = None) -> None:
    """Run every configured mailbox until `stop` is set (the background task of `hub serve`)."""
    chosen = mailboxes_from_settings(runtime.settings) if configs is None else configs
    if chosen:
        await asyncio.gather(*(run_mailbox(runtime, cfg, stop) for cfg in chosen))


async def poll_once(runtime: Runtime, configs: list[MailboxConfig] | None = None) -> dict[str, dict[str, int]]:
    """Connect, drain and disconnect each mailbox once (the arq cron of `hub worker`)."""
    results: dict[str, dict[str, int]] = {}
    for cfg in mailboxes_from_settings(runtime.settings) if configs is None else configs:
        try:
            async with ImapSession(cfg) as box:
                results[cfg.key] = await drain(runtime, box)
        except ImapError as exc:
            log.warning("mailbox %s: %s; next poll retries", cfg.key, exc)
            results[cfg.key] = {"error": 1}
    return results


async def poll_mailboxes_job(ctx: dict[str, Any]) -> dict[str, dict[str, int]]:
    """arq cron: one drain of every mailbox, with the worker's runtime."""
    runtime: Runtime = ctx["hub"]
    return await poll_once(runtime)

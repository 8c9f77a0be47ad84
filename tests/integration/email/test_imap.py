"""The IMAP poller against a real dovecot: IDLE, crashes, backlog, UIDVALIDITY, malformed mail."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from sqlalchemy import func, select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.channels.email.mailbox import ImapSession
from hub.channels.email.poller import poll_once
from hub.routing.wiring import rules_changed
from hub.store.models import MailboxCheckpoint, Message, OutboxItem, QuarantineItem, Rule, Template
from tests.integration.email.conftest import HOTEL, mailbox, polling
from tests.support.dovecot import Dovecot
from tests.support.waiting import wait_until
from tests.unit.email.test_email_fuzz import mutated

pytestmark = pytest.mark.imap


def mail(n: int, *, sender: str = "giulia@example.com", subject: str | None = None, extra: str = "") -> bytes:
    subject = subject or f"Booking question {n}"
    return (f"From: Giulia <{sender}>\r\nTo: {HOTEL}\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{n}@guest.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n{extra}"
            f"\r\nHello, message number {n}.\r\n").encode()


async def stored(rt: hub_runtime.Runtime) -> list[str]:
    async with rt.factory() as session:
        rows = await session.execute(select(col(Message.external_id)).where(col(Message.direction) == "in"))
        return [r for r in rows.scalars() if r is not None]


async def checkpoint_of(rt: hub_runtime.Runtime, key: str) -> MailboxCheckpoint | None:
    async with rt.factory() as session:
        found = await session.execute(select(MailboxCheckpoint).where(col(MailboxCheckpoint.mailbox) == key))
        return found.scalar_one_or_none()


async def test_new_mail_arrives_through_idle_within_two_seconds(
    runtime: hub_runtime.Runtime, dovecot: Dovecot
) -> None:
    config = mailbox(dovecot, poll_seconds=60.0)  # a poll could not explain a 2 s arrival
    async with polling(runtime, config) as task:
        await wait_until(lambda: _has_checkpoint(runtime, config.key), 5, "first drain")
        await asyncio.sleep(0.3)  # the poller is in IDLE now
        await dovecot.append(mail(1))
        elapsed = await wait_until(lambda: _count_is(runtime, 1), 2.0, "the IDLE push")
        assert not task.done()
    assert elapsed < 2.0
    assert await stored(runtime) == ["m1@guest.example"]


async def _has_checkpoint(rt: hub_runtime.Runtime, key: str) -> bool:
    return await checkpoint_of(rt, key) is not None


async def _count_is(rt: hub_runtime.Runtime, n: int) -> bool:
    return len(await stored(rt)) >= n


@pytest.mark.slow
async def test_500_messages_appended_while_down_are_all_ingested_once(
    runtime: hub_runtime.Runtime, dovecot: Dovecot
) -> None:
    await dovecot.append(*(mail(n) for n in range(500)))
    config = mailbox(dovecot)
    async with polling(runtime, config):
        await wait_until(lambda: _count_is(runtime, 500), 60, "500 messages")
    ids = await stored(runtime)
    assert len(ids) == 500 and len(set(ids)) == 500
    point = await checkpoint_of(runtime, config.key)
    assert point is not None and point.last_uid == 500
    # Forget the checkpoint: the whole folder is read again and every message is a duplicate.
    async with runtime.factory() as session, session.begin():
        point = await session.get(MailboxCheckpoint, point.id)
        assert point is not None
        point.last_uid = 0
    assert (await poll_once(runtime, [config]))[config.key] == {"duplicate": 500}
    assert len(await stored(runtime)) == 500


async def test_server_killed_mid_fetch_and_restarted_stores_every_message_once(
    runtime: hub_runtime.Runtime, dovecot: Dovecot
) -> None:
    padding = "X-Padding: " + "p" * 900 + "\r\n"  # bigger FETCH responses, so the kill lands inside one
    total = 600  # enough that the kill lands while batches are still being fetched, however fast ingest is
    await dovecot.append(*(mail(n, extra=padding) for n in range(total)))
    config = mailbox(dovecot, batch=25)
    async with polling(runtime, config) as task:
        await wait_until(lambda: _count_is(runtime, 1), 30, "the first batch")
        dovecot.kill9()
        partial = len(await stored(runtime))
        await asyncio.sleep(0.3)
        dovecot.start()
        await wait_until(lambda: _count_is(runtime, total), 60, f"all {total} after the restart")
        assert not task.done()
    ids = await stored(runtime)
    assert partial < total and len(ids) == total and len(set(ids)) == total


async def test_uidvalidity_change_resets_the_checkpoint_without_duplicates(
    runtime: hub_runtime.Runtime, dovecot: Dovecot
) -> None:
    client = await dovecot.client()
    assert (await client.create("hub")).result == "OK"
    await client.logout()
    await dovecot.append(*(mail(n) for n in range(3)), folder="hub")
    config = mailbox(dovecot, folder="hub")
    assert (await poll_once(runtime, [config]))[config.key] == {"stored": 3}
    before = await checkpoint_of(runtime, config.key)
    await dovecot.recreate("hub")
    await dovecot.append(*(mail(n) for n in range(5)), folder="hub")  # UIDs 1..5 again, 3 known
    assert (await poll_once(runtime, [config]))[config.key] == {"duplicate": 3, "stored": 2}
    after = await checkpoint_of(runtime, config.key)
    assert before is not None and after is not None
    assert after.uidvalidity != before.uidvalidity and (before.last_uid, after.last_uid) == (3, 5)
    assert sorted(await stored(runtime)) == [f"m{n}@guest.example" for n in range(5)]


async def test_processed_folder_receives_ingested_mail(runtime: hub_runtime.Runtime, dovecot: Dovecot) -> None:
    await dovecot.append(mail(1), mail(2))
    config = mailbox(dovecot, processed_folder="Processed")
    assert (await poll_once(runtime, [config]))[config.key] == {"stored": 2}
    assert await dovecot.count("INBOX") == 0 and await dovecot.count("Processed") == 2


async def test_each_fetched_batch_runs_under_a_trace_id_of_its_own(
    runtime: hub_runtime.Runtime, dovecot: Dovecot
) -> None:
    async with runtime.factory() as session, session.begin():
        session.add(Template(name="ack", channel="email", purpose="transactional", body_text="Grazie {{ name }}!"))
        session.add(Rule(name="ack", event="message.received", actions=[{"type": "auto_reply", "template": "ack"}],
                         condition={"field": "message.visible_text", "op": "contains_any", "value": ["Hello"]}))
    rules_changed(runtime)
    await dovecot.append(*(mail(n, sender=f"guest{n}@example.com") for n in range(4)))
    config = mailbox(dovecot, batch=2)
    assert (await poll_once(runtime, [config]))[config.key] == {"stored": 4}
    async with runtime.factory() as session:  # the auto-replies' outbox rows, in ingest order
        rows = (await session.execute(select(OutboxItem).order_by(col(OutboxItem.id)))).scalars().all()
    traces = [row.payload.get("trace_id") for row in rows]
    assert len(traces) == 4 and None not in traces
    assert traces[0] == traces[1] != traces[2] == traces[3]  # one ingest transaction, one trace id


def _fuzz_cases(count: int) -> list[bytes]:
    """Mutated real mail drawn by hypothesis (collected here, replayed through dovecot below)."""
    cases: list[bytes] = []

    @hsettings(max_examples=count, deadline=None, database=None, derandomize=True,
               suppress_health_check=list(HealthCheck))
    @given(mutated())
    def collect(raw: bytes) -> None:
        cases.append(raw)

    collect()
    return cases


_BROKEN = [b"", b"\x00\x00\x00", b"not a mail at all", b"From: \r\n\r\nno sender", bytes(range(256)) * 4]


async def test_malformed_mail_never_crashes_the_poller(runtime: hub_runtime.Runtime, dovecot: Dovecot) -> None:
    cases = [raw for raw in _fuzz_cases(80) + _BROKEN if raw.strip()]  # IMAP APPEND refuses 0 bytes
    await dovecot.append(*cases, mail(999))
    config = mailbox(dovecot)
    counts = (await poll_once(runtime, [config]))[config.key]
    assert "error" not in counts and sum(counts.values()) == len(cases) + 1
    assert set(counts) <= {"stored", "duplicate", "quarantined", "autoreply", "bounce"}
    assert counts.get("quarantined", 0) >= 3  # the hand-made broken ones at least
    async with runtime.factory() as session:
        quarantined = (await session.execute(select(QuarantineItem))).scalars().all()
        no_raw = await session.execute(select(func.count()).select_from(Message).where(
            col(Message.direction) == "in", col(Message.raw_id).is_(None)))
    assert all(q.raw for q in quarantined) and no_raw.scalar_one() == 0
    assert "m999@guest.example" in await stored(runtime)  # the poller carried on past the bad ones


@pytest.mark.parametrize("tls", ["tls", "starttls"])
async def test_tls_and_starttls_connect_and_select(tls: str) -> None:
    server = Dovecot(tls=True)
    server.start()
    try:
        port = server.tls_port if tls == "tls" else server.port
        config = mailbox(server, port=port, tls=tls, validate_certs=False)
        async with ImapSession(config) as box:
            assert await box.select() > 0
            assert await box.uids_after(0) == []
    finally:
        server.cleanup()

"""Bounces and failed status callbacks that arrive after the send still count in the campaign's numbers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.app import create_app
from hub.campaigns import stats
from hub.channels.email.inbound import EmailOutcome, ingest_raw
from hub.keys import RUNTIME
from hub.settings import load_settings
from hub.store.models import CampaignRecipient, DomainEvent, Message, Suppression
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import HeldReplies, run_to_end, schedule_now
from tests.support.services import free_port
from tests.support.smtp_sink import SmtpSink
from tests.support.twilio_fake import FakeTwilio, sign, sms_settings, status_form

HOTEL = "offers@hotel.test"
STATUS = "/webhooks/twilio/status"


def dsn(original_id: str, recipient: str, status: str) -> bytes:
    """A Postfix-style delivery status notification about one of our messages."""
    return (
        f"From: MAILER-DAEMON@mx.example.com\r\nTo: {HOTEL}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{status}-{recipient}>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox trouble\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{original_id}>\r\n--B--\r\n"
    ).encode()


async def sent_messages(rt: hub_runtime.Runtime, campaign_id: int) -> dict[str, Message]:
    async with rt.factory() as session:
        rows = await session.execute(select(Message).join(
            CampaignRecipient, col(CampaignRecipient.message_id) == col(Message.id))
            .where(col(CampaignRecipient.campaign_id) == campaign_id))
        return {m.recipient: m for m in rows.scalars()}


async def numbers(rt: hub_runtime.Runtime, campaign_id: int) -> tuple[dict[str, object], dict[str, int]]:
    """The campaign's totals, and its time series summed over buckets."""
    async with rt.factory() as session:
        totals = await stats.totals(session, campaign_id)
        points = await stats.series(session, campaign_id, "minute")
    return totals, {key: sum(int(p[key]) for p in points) for key in stats.SERIES}


async def test_a_dsn_after_the_send_counts_as_bounced_and_suppresses(
    database_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    settings = load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                             mail_domain="hub.test", smtp_from=HOTEL, smtp_host="127.0.0.1", smtp_port=sink.port)
    async with hub_runtime.running(settings) as rt:
        await seed.customers(rt.factory, 3)
        campaign_id = await seed.campaign(rt.factory)
        await schedule_now(rt, campaign_id)
        await run_to_end(rt)
        assert len(sink.sink.envelopes) == 3
        sent = await sent_messages(rt, campaign_id)
        hard = await ingest_raw(rt, dsn(str(sent[seed.address(0)].external_id), seed.address(0), "5.1.1"),
                                mailbox=HOTEL, source="dsn-1")
        soft = await ingest_raw(rt, dsn(str(sent[seed.address(1)].external_id), seed.address(1), "4.2.2"),
                                mailbox=HOTEL, source="dsn-2")
        assert (hard.outcome, soft.outcome) == (EmailOutcome.BOUNCE, EmailOutcome.BOUNCE)
        totals, series = await numbers(rt, campaign_id)
        async with rt.factory() as session:
            suppressed = (await session.execute(select(Suppression))).scalars().all()
            events = (await session.execute(select(DomainEvent).where(
                col(DomainEvent.type) == "delivery.updated").order_by(col(DomainEvent.id)))).scalars().all()
    assert totals["status"] == {"bounced": 1, "failed": 1, "sent": 1}
    assert totals["events"] == {"bounced": 1, "failed": 1}
    assert (series["sent"], series["bounced"], series["failed"]) == (3, 1, 1)
    assert [(s.address, s.reason) for s in suppressed] == [(seed.address(0), "hard_bounce")]
    assert [(e.payload["message_id"], e.payload["old"], e.payload["new"]) for e in events] == [
        (sent[seed.address(0)].id, "sent", "bounced"), (sent[seed.address(1)].id, "sent", "undelivered")]
    assert "5.1.1" in str(events[0].payload["reason"])


async def test_an_undelivered_status_callback_counts_as_failed(
    database_url: str, tmp_path: Path, twilio: FakeTwilio
) -> None:
    settings = sms_settings(database_url, tmp_path, twilio, sms_rates={"long_code": 1000})
    async with TestClient(TestServer(create_app(settings))) as client:
        rt = client.app[RUNTIME]
        await seed.customers(rt.factory, 3)
        campaign_id = await seed.campaign(rt.factory, channel="sms")
        await schedule_now(rt, campaign_id)
        await run_to_end(rt)
        assert sorted(r["To"] for r in twilio.requests) == [seed.phone(n) for n in range(3)]
        sent = await sent_messages(rt, campaign_id)
        for n, status, code in ((0, "undelivered", "30003"), (1, "delivered", None)):
            form = status_form(str(sent[seed.phone(n)].provider_id), status, seed.phone(n), code=code,
                               text="Unreachable destination handset" if code else "")
            response = await client.post(STATUS, data=form, headers=sign(STATUS, form))
            assert response.status == 204, await response.text()
        totals, series = await numbers(rt, campaign_id)
        async with rt.factory() as session:
            failed = (await session.execute(select(CampaignRecipient).where(
                col(CampaignRecipient.status) == "failed"))).scalar_one()
            suppressions = (await session.execute(select(Suppression))).scalars().all()
    assert totals["status"] == {"failed": 1, "sent": 2}
    assert totals["events"] == {"delivered": 1, "failed": 1}
    assert totals["delivery"] == {"delivered": 1, "sent": 1, "undelivered": 1}
    assert (series["sent"], series["failed"], series["delivered"]) == (3, 1, 1)
    assert failed.address == seed.phone(0) and "30003" in (failed.error or "")
    assert suppressions == []  # a handset switched off is no reason to stop writing


async def test_a_bounce_applied_before_the_worker_records_the_send_is_not_overwritten(
    database_url: str, tmp_path: Path
) -> None:
    held = HeldReplies(hold={seed.address(0)})
    controller = Controller(held, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings = load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                             mail_domain="hub.test", smtp_from=HOTEL, smtp_host="127.0.0.1",
                             smtp_port=controller.port)
    try:
        async with hub_runtime.running(settings) as rt:
            await seed.customers(rt.factory, 1)
            campaign_id = await seed.campaign(rt.factory)
            await schedule_now(rt, campaign_id)
            sending = asyncio.create_task(run_to_end(rt))
            assert await asyncio.to_thread(held.arrived.wait, 60)
            # The relay has the message and its bounce comes back before the worker hears "250".
            sent = await sent_messages(rt, campaign_id)
            bounce = await ingest_raw(rt, dsn(str(sent[seed.address(0)].external_id), seed.address(0), "5.1.1"),
                                      mailbox=HOTEL, source="dsn-early")
            held.release.set()
            await sending
            message = (await sent_messages(rt, campaign_id))[seed.address(0)]
            totals, _ = await numbers(rt, campaign_id)
            async with rt.factory() as session:
                row = (await session.execute(select(CampaignRecipient))).scalar_one()
    finally:
        held.release.set()
        controller.stop()
    assert bounce.outcome == EmailOutcome.BOUNCE and len(held.envelopes) == 1
    assert message.delivery_status == "bounced" and "5.1.1" in (message.delivery_detail or "")
    assert (row.status, row.sent_at is not None, row.claimed_at, row.worker) == ("bounced", True, None, None)
    assert "5.1.1" in (row.error or "")
    assert totals["status"] == {"bounced": 1} and totals["events"] == {"bounced": 1}

"""An SMS campaign through real Redis and two `hub worker` processes to the fake Twilio, honouring STOP.

STOPs arrive through the signed inbound webhook (queued to arq, ingested by the workers) before
the campaign and while its first chunks wait at the provider; one customer has only a withdrawal
in the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.app import create_app
from hub.campaigns import stats
from hub.store.models import CampaignRecipient, Consent
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import schedule_now, statuses, store, wait_completed
from tests.integration.campaigns.harness import Worker, redis_server, worker_env
from tests.support.services import free_port
from tests.support.twilio_fake import FakeTwilio, sign, sms_form, sms_settings, twilio_env

pytestmark = [pytest.mark.slow, pytest.mark.redis]

RECIPIENTS = 120
CHUNK = 10
SMS = "/webhooks/twilio/sms"
Client = TestClient[web.Request, web.Application]


async def text_stop(client: Client, n: int) -> None:
    form = sms_form(f"SM{n:032x}", "STOP", sender=seed.phone(n))
    response = await client.post(SMS, data=form, headers=sign(SMS, form))
    assert response.status == 200, await response.text()


async def wait_withdrawals(rt: hub_runtime.Runtime, count: int, within: float = 60.0) -> None:
    """Until `count` customers have withdrawn SMS consent (the workers ingest the STOPs)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with rt.factory() as session:
            found = (await session.execute(select(func.count()).select_from(Consent).where(
                col(Consent.channel) == "sms", col(Consent.granted).is_(False)))).scalar_one()
        if found >= count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"fewer than {count} STOPs recorded")


async def wait_claims_settled(rt: hub_runtime.Runtime, campaign_id: int, within: float = 60.0) -> None:
    """Until the workers stop claiming rows: every sending slot holds a chunk waiting at the closed gate.

    Idle workers pull due rows from the top of the id range, so before that a queued row may be
    claimed at any moment.
    """
    deadline, last, since = time.monotonic() + within, -1, time.monotonic()
    while time.monotonic() < deadline:
        claimed = (await statuses(rt, campaign_id)).get("sending", 0)
        if claimed != last or not claimed:
            last, since = claimed, time.monotonic()
        elif time.monotonic() - since >= 1.5:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the workers kept claiming rows with the provider's answers held")


async def last_queued(rt: hub_runtime.Runtime, campaign_id: int) -> CampaignRecipient:
    async with rt.factory() as session:
        found = await session.execute(select(CampaignRecipient).where(
            col(CampaignRecipient.campaign_id) == campaign_id, col(CampaignRecipient.status) == "queued")
            .order_by(col(CampaignRecipient.id).desc()).limit(1))
        return found.scalar_one()


async def status_of(rt: hub_runtime.Runtime, recipient_id: int) -> str:
    async with rt.factory() as session:
        row = await session.get(CampaignRecipient, recipient_id, populate_existing=True)
        assert row is not None
        return row.status


async def stop_between_chunks(rt: hub_runtime.Runtime, client: Client, twilio: FakeTwilio,
                              campaign_id: int, by_customer: dict[int, int]) -> int:
    """While chunks wait for the provider, a customer whose row is still queued texts STOP; returns its n."""
    await wait_claims_settled(rt, campaign_id)
    row = await last_queued(rt, campaign_id)
    n = by_customer[row.customer_id]
    await text_stop(client, n)
    await wait_withdrawals(rt, 5)
    assert await status_of(rt, int(row.id or 0)) == "queued"  # not claimed yet: the STOP came first
    twilio.gate.set()
    return n


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_sms_campaign_honours_stop_before_and_during_the_send(
    database_url: str, tmp_path: Path, twilio: FakeTwilio
) -> None:
    with redis_server() as redis:
        async with store(database_url, tmp_path) as rt:
            ids = await seed.customers(rt.factory, RECIPIENTS)
            by_customer = {cid: n for n, cid in enumerate(ids)}
            async with rt.factory() as session, session.begin():
                session.add(Consent(customer_id=ids[4], channel="sms", granted=False, source="front_desk"))
            campaign_id = await seed.campaign(rt.factory, channel="sms")
            env = worker_env(database_url, redis.url, free_port(), tmp_path / "data",
                             HUB_CAMPAIGN_CHUNK_SIZE=str(CHUNK), HUB_CAMPAIGN_STALE_SECONDS="120",
                             HUB_SMS_RATES='{"long_code": 1000}',
                             **twilio_env(twilio.url))
            workers = [Worker(env, tmp_path / f"worker{n}.log") for n in range(2)]
            web_settings = sms_settings(database_url, tmp_path / "web", twilio, redis_url=redis.url)
            try:
                async with TestClient(TestServer(create_app(web_settings))) as client:
                    for n in (1, 2, 3):
                        await text_stop(client, n)
                    await wait_withdrawals(rt, 4)
                    twilio.gate.clear()  # the provider holds its answers: chunks stay in flight
                    await schedule_now(rt, campaign_id)
                    late = await stop_between_chunks(rt, client, twilio, campaign_id, by_customer)
                    final = await wait_completed(rt, campaign_id)
                async with rt.factory() as session:
                    totals = await stats.totals(session, campaign_id)
                    why = Counter((await session.execute(select(col(CampaignRecipient.error)).where(
                        col(CampaignRecipient.status) == "skipped"))).scalars())
            finally:
                for worker in workers:
                    worker.stop()
    stopped = {1, 2, 3, 4, late}
    assert final == {"sent": RECIPIENTS - 5, "skipped": 5}
    assert totals["status"] == final and totals["recipients"] == RECIPIENTS
    assert why == {"suppressed": 4, "no marketing consent on sms": 1}  # STOP suppresses; the ledger row alone
    sent_to = Counter(r["To"] for r in twilio.requests)
    assert {seed.phone(n) for n in stopped}.isdisjoint(sent_to)
    assert sorted(sent_to) == sorted(seed.phone(n) for n in range(RECIPIENTS) if n not in stopped)
    assert set(sent_to.values()) == {1}
    for request in twilio.requests:
        n = int(request["To"].removeprefix("+39348"))
        assert f" Guest {n} (room {100 + n % 50})." in request["Body"]
        assert request["StatusCallback"] == "https://hub.example.test/webhooks/twilio/status"

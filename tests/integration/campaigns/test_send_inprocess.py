"""A campaign through the in-process engine on SQLite and PostgreSQL, to a real aiosmtpd sink."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.campaigns import lifecycle, service
from hub.settings import Settings, load_settings
from hub.store.models import Campaign, CampaignRecipient, Consent, Suppression
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import run_to_end
from tests.support.smtp_sink import SmtpSink


@pytest.fixture
def mail_settings(database_url: str, tmp_path: Path, sink: SmtpSink) -> Settings:
    return load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                         mail_domain="hub.test", smtp_from="offers@hotel.test", smtp_host="127.0.0.1",
                         smtp_port=sink.port, public_url="https://hub.test", campaign_chunk_size=20)


async def test_campaign_reaches_each_recipient_once_personalised(mail_settings: Settings, sink: SmtpSink) -> None:
    async with hub_runtime.running(mail_settings) as rt:
        ids = await seed.customers(rt.factory, 60)
        await seed.customers(rt.factory, 5, tags=["other"], start=1000)
        async with rt.factory() as session, session.begin():
            session.add(Consent(customer_id=ids[1], channel="email", granted=False, source="test"))
            session.add(Suppression(channel="email", address=seed.address(2), reason="hard_bounce"))
        campaign_id = await seed.campaign(rt.factory)
        async with rt.factory() as session, session.begin():
            await service.schedule(session, campaign_id, None, actor="test")
        await run_to_end(rt)
        async with rt.factory() as session:
            campaign = await session.get(Campaign, campaign_id)
            statuses = dict((await session.execute(
                select(col(CampaignRecipient.status), func.count()).where(
                    col(CampaignRecipient.campaign_id) == campaign_id).group_by(col(CampaignRecipient.status)))).all())
        assert campaign is not None and campaign.status == lifecycle.COMPLETED
        assert statuses == {"sent": 58, "skipped": 2}
        assert len(sink.sink.envelopes) == 58
        assert sink.sink.messages_to(seed.address(1)) == [] and sink.sink.messages_to(seed.address(2)) == []
        raw = sink.sink.messages_to(seed.address(3))
        assert len(raw) == 1
        msg = email.message_from_bytes(raw[0], policy=email.policy.default)
        assert msg["Subject"] == "Guest, spring is here"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "mailto:unsubscribe+" in msg["List-Unsubscribe"] and "https://hub.test/u/" in msg["List-Unsubscribe"]
        text = msg.get_body(("plain",)).get_content()
        assert "Guest 3" in text and "room 103" in text
        html = msg.get_body(("html",)).get_content()
        assert "https://hub.test/t/c/" in html and "/t/o/" in html

"""`hub campaign send-test` as a marketer runs it: one rendered message to a test address, nothing recorded."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import sys
from pathlib import Path

from sqlalchemy import func, select

from hub.store.models import Customer, Message, Suppression
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import store
from tests.integration.campaigns.harness import ROOT
from tests.support.smtp_sink import SmtpSink
from tests.support.twilio_fake import FakeTwilio, twilio_env

TEST_NUMBER = "+393489990001"


async def hub(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run `python -m hub ...` without blocking this loop (the fake Twilio answers from it)."""
    environ = {**os.environ, **env, "PYTHONWARNINGS": "ignore"}
    environ.pop("HUB_REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub", *args, cwd=ROOT, env=environ,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()


async def seeded(database_url: str, tmp_path: Path, channel: str) -> tuple[int, int]:
    """Two customers and a draft campaign; returns (campaign id, id of customer `Guest 1`)."""
    async with store(database_url, tmp_path) as rt:
        ids = await seed.customers(rt.factory, 2)
        campaign_id = await seed.campaign(rt.factory, channel=channel)
        async with rt.factory() as session, session.begin():
            session.add(Suppression(channel="sms", address="+393489990002", reason="opt_out"))
        return campaign_id, ids[1]


async def stored_messages(database_url: str, tmp_path: Path) -> int:
    async with store(database_url, tmp_path) as rt, rt.factory() as session:
        assert (await session.execute(select(func.count()).select_from(Customer))).scalar_one() == 2
        return int((await session.execute(select(func.count()).select_from(Message))).scalar_one())


async def test_send_test_of_an_sms_campaign_goes_to_the_given_number(
    database_url: str, tmp_path: Path, twilio: FakeTwilio
) -> None:
    campaign_id, customer_id = await seeded(database_url, tmp_path, "sms")
    env = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path / "data"), **twilio_env(twilio.url)}
    code, out, err = await hub(env, "campaign", "send-test", str(campaign_id), "--customer-id", str(customer_id),
                               "--to", "348 999 0001")
    assert (code, out.strip()) == (0, "sent (1 SMS segment)"), err
    [request] = twilio.requests
    assert request["To"] == TEST_NUMBER and request["From"] == "+390612345678"
    assert request["Body"] == "Ciao Guest 1 (room 101). Unsubscribe: https://hub.example.test/u/test"
    code, out, err = await hub(env, "campaign", "send-test", str(campaign_id), "--customer-id", str(customer_id),
                               "--to", "+393489990002")
    assert code == 0 and out.startswith("failed:") and "suppressed" in out, err
    code, _, err = await hub(env, "campaign", "send-test", str(campaign_id), "--customer-id", str(customer_id),
                             "--to", "not a number")
    assert code == 2 and "--to" in err
    assert len(twilio.requests) == 1 and await stored_messages(database_url, tmp_path) == 0


async def test_send_test_of_an_email_campaign_is_marked_test(
    database_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    campaign_id, customer_id = await seeded(database_url, tmp_path, "email")
    env = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path / "data"), "HUB_SMTP_HOST": "127.0.0.1",
           "HUB_SMTP_PORT": str(sink.port), "HUB_SMTP_FROM": "offers@hotel.test"}
    code, out, err = await hub(env, "campaign", "send-test", str(campaign_id), "--customer-id", str(customer_id),
                               "--to", "Marketing@Hotel.test")
    assert (code, out.strip()) == (0, "sent"), err
    [raw] = sink.sink.messages_to("marketing@hotel.test")
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Subject"] == "[TEST] Guest, spring is here" and mail["X-Hub-Campaign-Test"] == str(campaign_id)
    assert "Ciao Guest 1 (room 101)" in mail.get_body(("plain",)).get_content()
    assert await stored_messages(database_url, tmp_path) == 0

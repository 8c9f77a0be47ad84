"""Twilio messaging webhooks over HTTP: signatures, dedupe, consent keywords, inboxes, status callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import MultiDict
from sqlalchemy import func
from sqlmodel import col, select
from twilio.request_validator import RequestValidator

from hub.channels.sms.inbound import INGEST_JOB
from hub.channels.sms.wiring import SENDER_KEY
from hub.keys import RUNTIME
from hub.runtime import Runtime, inprocess
from hub.settings import Settings
from hub.store.models import (
    Attachment,
    Consent,
    Conversation,
    Inbox,
    Message,
    OutboxItem,
    QuarantineItem,
    RawInput,
    Suppression,
    Team,
)
from hub.web.twilio_signature import public_url, signature_ok
from tests.conftest import make_agent
from tests.support.twilio_fake import (
    HUB_NUMBER,
    FakeTwilio,
    sign,
    sms_form,
    sms_settings,
)

Client = TestClient[web.Request, web.Application]
SMS = "/webhooks/twilio/sms"
STATUS = "/webhooks/twilio/status"
GUEST = "+393471112233"

# twilio-python's own test vector (tests/unit/test_request_validator.py)
CANONICAL_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
CANONICAL_PARAMS = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
                    "To": "+18005551212", "Caller": "+14158675309"}
CANONICAL_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.fixture
def settings(database_url: str, tmp_path: Path, twilio: FakeTwilio) -> Settings:
    return sms_settings(database_url, tmp_path, twilio)


@pytest.fixture
async def app(client: Client) -> AsyncIterator[Client]:
    """The client, closing the Twilio sender's HTTP session before the app stops."""
    yield client
    sender = client.app[RUNTIME].extras.get(SENDER_KEY)
    if sender is not None:
        await sender.aclose()


def rt(client: Client) -> Runtime:
    return client.app[RUNTIME]


async def post(client: Client, path: str, form: dict[str, str], headers: dict[str, str] | None = None) -> Any:
    """Post a signed form, then let the in-process dispatcher finish the ingest job it queued."""
    response = await client.post(path, data=form, headers=sign(path, form) if headers is None else headers)
    await response.read()
    queue = inprocess(rt(client))
    assert queue is not None
    await queue.drain()
    return response


async def count(client: Client, model: Any, *where: Any) -> int:
    async with rt(client).factory() as session:
        found = await session.execute(select(func.count()).select_from(model).where(*where))
        return int(found.scalar_one())


def test_the_canonical_twilio_vector_validates_through_our_url_building() -> None:
    assert RequestValidator("12345").compute_signature(CANONICAL_URL, CANONICAL_PARAMS) == CANONICAL_SIGNATURE
    url = public_url("https://mycompany.com/", "/myapp.php?foo=1&bar=2")
    assert url == CANONICAL_URL
    params, signature = MultiDict(CANONICAL_PARAMS), CANONICAL_SIGNATURE
    assert signature_ok("12345", url, params, signature)
    assert not signature_ok("12345", url, MultiDict({**CANONICAL_PARAMS, "Digits": "1235"}), signature)
    assert not signature_ok("12345", url.replace("foo=1", "foo=2"), params, signature)
    assert not signature_ok("54321", url, params, signature)
    assert not signature_ok("12345", url, params, None)


async def test_a_signed_sms_is_stored_once_even_when_posted_three_times(app: Client) -> None:
    form = sms_form("SM" + "1" * 32, "Buongiorno, a che ora è la colazione?")
    for _ in range(3):
        response = await post(app, SMS, form)
        assert response.status == 200 and response.content_type == "text/xml"
        assert (await response.text()).endswith("<Response />")
    assert await count(app, Message) == 1 and await count(app, RawInput) == 1
    async with rt(app).factory() as session:
        message = (await session.execute(select(Message))).scalar_one()
        raw = await session.get(RawInput, message.raw_id)
    assert message.channel == "sms" and message.sender == GUEST and message.headers == {"segments": "1"}
    assert raw is not None and b"MessageSid=SM1111" in raw.data


async def test_concurrent_retries_of_one_message_store_it_once(app: Client) -> None:
    form = sms_form("SM" + "f" * 32, "Ciao")
    responses = await asyncio.gather(*(app.post(SMS, data=form, headers=sign(SMS, form)) for _ in range(3)))
    assert [r.status for r in responses] == [200, 200, 200]
    queue = inprocess(rt(app))
    assert queue is not None
    await queue.drain()
    assert await count(app, Message) == 1


@pytest.mark.parametrize("attack", ["tampered", "wrong_url", "missing", "wrong_token"])
async def test_bad_signatures_are_403_and_store_nothing(app: Client, attack: str) -> None:
    form = sms_form("SM" + "2" * 32, "Ciao")
    headers = sign(SMS, form)
    if attack == "tampered":
        form = {**form, "Body": "Ciao, rimborsatemi"}
    elif attack == "wrong_url":
        headers = sign(SMS, form, base="https://evil.example.test")
    elif attack == "missing":
        headers = {}
    else:
        headers = sign(SMS, form, token="not-the-token")
    response = await app.post(SMS, data=form, headers=headers)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "bad_signature"
    assert await count(app, Message) == 0 and await count(app, RawInput) == 0


async def test_oversized_bodies_are_refused(app: Client) -> None:
    form = sms_form("SM" + "3" * 32, "x" * 70_000)
    response = await post(app, SMS, form)
    assert response.status == 413 and await count(app, Message) == 0


async def test_a_signed_but_broken_form_is_quarantined_and_named(app: Client) -> None:
    form = sms_form("SM" + "4" * 32)
    form.pop("From")
    response = await post(app, SMS, form)
    assert response.status == 400 and (await response.json())["error"]["field"] == "From"
    assert await count(app, QuarantineItem) == 1 and await count(app, Message) == 0


async def test_mms_media_are_kept_as_attachment_references(app: Client) -> None:
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    form = sms_form("MM" + "5" * 32, "", NumMedia="1", MediaUrl0=url, MediaContentType0="image/jpeg")
    assert (await post(app, SMS, form)).status == 200
    async with rt(app).factory() as session:
        attachment = (await session.execute(select(Attachment))).scalar_one()
    assert (attachment.url, attachment.filename, attachment.content_type) == (url, "ME1.jpg", "image/jpeg")


async def test_each_hub_number_files_conversations_under_its_inbox_and_team(app: Client) -> None:
    async with rt(app).factory() as session, session.begin():
        team = Team(name="Front desk")
        session.add(team)
        await session.flush()
        session.add(Inbox(name="Reception SMS", channel="sms", address=HUB_NUMBER, team_id=team.id))
    await post(app, SMS, sms_form("SM" + "6" * 32, "Ciao", sender="+393471112244"))
    await post(app, SMS, sms_form("SM" + "7" * 32, "Ciao", sender="+393471112255", to="+390611111111"))
    async with rt(app).factory() as session:
        rows = (await session.execute(select(Conversation).order_by(col(Conversation.id)))).scalars().all()
    assert [(c.inbox_id is not None, c.team_id == team.id) for c in rows] == [(True, True), (False, False)]


async def test_a_conversation_opened_before_its_number_had_an_inbox_joins_it_with_the_next_message(
    app: Client,
) -> None:
    await post(app, SMS, sms_form("SM" + "8" * 32, "Ciao", sender="+393471112266"))
    async with rt(app).factory() as session, session.begin():
        team = Team(name="Night desk")
        session.add(team)
        await session.flush()
        session.add(Inbox(name="Night SMS", channel="sms", address=HUB_NUMBER, team_id=team.id))
    await post(app, SMS, sms_form("SM" + "9" * 32, "Ci siete?", sender="+393471112266"))
    async with rt(app).factory() as session:
        conversation = (await session.execute(select(Conversation))).scalar_one()
    assert conversation.inbox_id is not None and conversation.team_id == team.id


async def test_a_burst_is_stored_in_batches_and_a_broken_job_fails_alone(app: Client) -> None:
    runtime = rt(app)
    # A queued ingest job whose kept form is gone: the burst's batch claims it with the others.
    async with runtime.factory() as session, session.begin():
        broken = OutboxItem(kind=INGEST_JOB, payload={"raw_id": 10**9, "channel": "sms"})
        session.add(broken)
    forms = [sms_form(f"SM{n:032d}", f"messaggio {n}", sender=f"+3934711100{n:02d}") for n in range(25)]
    responses = await asyncio.gather(*(app.post(SMS, data=form, headers=sign(SMS, form)) for form in forms))
    assert [r.status for r in responses] == [200] * 25
    queue = inprocess(runtime)
    assert queue is not None
    await queue.drain()
    async with runtime.factory() as session:
        jobs = (await session.execute(select(OutboxItem).where(col(OutboxItem.kind) == INGEST_JOB))).scalars().all()
        kept = (await session.execute(
            select(Message.external_id, RawInput.data).join(RawInput, col(Message.raw_id) == col(RawInput.id))
        )).all()
    statuses = {job.id: job.status for job in jobs}
    assert statuses.pop(broken.id) == "failed"
    assert list(statuses.values()) == ["done"] * 25
    assert sorted(sid for sid, _ in kept) == sorted(form["MessageSid"] for form in forms)
    assert all(f"MessageSid={sid}".encode() in data for sid, data in kept)  # each linked to its own form


async def test_stop_records_the_opt_out_and_the_next_reply_makes_no_request(
    app: Client, twilio: FakeTwilio
) -> None:
    await post(app, SMS, sms_form("SM" + "8" * 32, "Ciao"))
    assert (await post(app, SMS, sms_form("SM" + "9" * 32, " stop! "))).status == 200
    assert await count(app, Suppression, col(Suppression.address) == GUEST, col(Suppression.channel) == "sms")
    async with rt(app).factory() as session:
        ledger = (await session.execute(select(Consent))).scalars().all()
        conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
    assert [(c.channel, c.purpose, c.granted, c.source) for c in ledger] == [
        ("sms", "marketing", False, "sms_keyword")]
    _, token = await make_agent(rt(app), "agent@hotel.test", "agent")
    response = await app.post(f"/api/v1/conversations/{conversation_id}/reply", json={"body": "Le scriviamo"},
                              headers={"Authorization": f"Bearer {token}"})
    assert response.status == 202
    message_id = (await response.json())["id"]
    queue = inprocess(rt(app))
    assert queue is not None
    await queue.drain()
    async with rt(app).factory() as session:
        message = await session.get(Message, message_id)
    assert message is not None and message.delivery_status == "failed"
    assert "suppressed" in (message.delivery_detail or "") and twilio.requests == []


async def test_start_lifts_the_opt_out_and_twilios_opt_out_type_is_honoured(app: Client) -> None:
    await post(app, SMS, sms_form("SM" + "a" * 32, "BASTA"))
    await post(app, SMS, sms_form("SM" + "b" * 32, "ok go", OptOutType="START"))
    assert await count(app, Suppression) == 0
    async with rt(app).factory() as session:
        ledger = (await session.execute(select(Consent).order_by(col(Consent.id)))).scalars().all()
    assert [(c.granted, c.source) for c in ledger] == [(False, "sms_keyword"), (True, "twilio_opt_out_type")]


async def test_help_gets_the_configured_reply_in_twiml(app: Client) -> None:
    response = await post(app, SMS, sms_form("SM" + "c" * 32, "help"))
    text = await response.text()
    assert response.status == 200 and "<Message>" in text and "Reply STOP" in text
    assert await count(app, Message) == 1


async def _sent_reply(app: Client, twilio: FakeTwilio, body: str = "Certo!") -> tuple[int, str]:
    await post(app, SMS, sms_form("SM" + "d" * 32, "Ciao"))
    async with rt(app).factory() as session:
        conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
    _, token = await make_agent(rt(app), "agent@hotel.test", "agent")
    response = await app.post(f"/api/v1/conversations/{conversation_id}/reply", json={"body": body},
                              headers={"Authorization": f"Bearer {token}"})
    assert response.status == 202, await response.text()
    queue = inprocess(rt(app))
    assert queue is not None
    await queue.drain()
    async with rt(app).factory() as session:
        message = await session.get(Message, (await response.json())["id"])
    assert message is not None and message.provider_id is not None
    return int(message.id or 0), message.provider_id


async def test_status_callbacks_out_of_order_never_move_backwards(app: Client, twilio: FakeTwilio) -> None:
    message_id, sid = await _sent_reply(app, twilio)
    assert twilio.requests[0]["StatusCallback"] == "https://hub.example.test/webhooks/twilio/status"
    seen = []
    for status in ("delivered", "sent", "queued", "undelivered", "delivered"):
        form = {"MessageSid": sid, "MessageStatus": status, "To": GUEST, "From": HUB_NUMBER,
                "AccountSid": "AC" + "0" * 32}
        assert (await post(app, STATUS, form)).status == 204
        async with rt(app).factory() as session:
            message = await session.get(Message, message_id)
            assert message is not None
            seen.append(message.delivery_status)
    assert seen == ["delivered"] * 5


async def test_a_status_callback_with_21610_records_the_opt_out(app: Client, twilio: FakeTwilio) -> None:
    _, sid = await _sent_reply(app, twilio)
    form = {"MessageSid": sid, "MessageStatus": "failed", "To": GUEST, "ErrorCode": "21610",
            "ErrorMessage": "Attempt to send to unsubscribed recipient"}
    assert (await post(app, STATUS, form)).status == 204
    assert await count(app, Suppression, col(Suppression.reason) == "opt_out") == 1
    assert await count(app, Consent, col(Consent.source) == "twilio_error_21610") == 1
    form = {"MessageSid": sid, "MessageStatus": "failed", "To": "+393471119999", "ErrorCode": "30003"}
    assert (await post(app, STATUS, form)).status == 204
    assert await count(app, Suppression) == 1  # a handset switched off is no reason to stop writing


async def test_replies_over_1600_characters_are_400_naming_body(app: Client, twilio: FakeTwilio) -> None:
    await post(app, SMS, sms_form("SM" + "e" * 32, "Ciao"))
    async with rt(app).factory() as session:
        conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
    _, token = await make_agent(rt(app), "agent@hotel.test", "agent")
    response = await app.post(f"/api/v1/conversations/{conversation_id}/reply", json={"body": "x" * 1601},
                              headers={"Authorization": f"Bearer {token}"})
    error = (await response.json())["error"]
    assert response.status == 400 and error["field"] == "body" and "1600" in error["message"]
    assert await count(app, Message, col(Message.direction) == "out") == 0 and twilio.requests == []

"""Twilio voice webhooks and hand-logged calls over HTTP: call logs, timeline, `call.missed`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func
from sqlmodel import col, select

from hub.keys import RUNTIME
from hub.runtime import Runtime
from hub.settings import Settings, load_settings
from hub.store.models import CallLog, DomainEvent, TimelineEntry
from tests.conftest import make_agent
from tests.support.twilio_fake import ACCOUNT_SID, HUB_NUMBER, sign, twilio_settings

Client = TestClient[web.Request, web.Application]
VOICE, DIAL, STATUS = "/webhooks/twilio/voice", "/webhooks/twilio/voice/dial", "/webhooks/twilio/voice/status"
CALLER = "+393471112233"
STAFF = "+393339998877"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                         voice_forward_to=STAFF, voice_greeting="Hotel Aurora, attenda in linea",
                         **twilio_settings())


def rt(client: Client) -> Runtime:
    return client.app[RUNTIME]


def call_form(sid: str, status: str = "ringing", **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": ACCOUNT_SID, "From": CALLER, "To": HUB_NUMBER,
            "Direction": "inbound", "CallStatus": status, "ApiVersion": "2010-04-01", **extra}


async def post(client: Client, path: str, form: dict[str, str]) -> Any:
    return await client.post(path, data=form, headers=sign(path, form))


async def rows(client: Client, model: Any) -> list[Any]:
    async with rt(client).factory() as session:
        return list((await session.execute(select(model).order_by(col(model.id)))).scalars())


async def test_an_incoming_call_is_logged_and_forwarded(client: Client) -> None:
    response = await post(client, VOICE, call_form("CA" + "1" * 32))
    text = await response.text()
    assert response.status == 200 and response.content_type == "text/xml"
    assert f"<Dial action=\"https://hub.example.test{DIAL}\" timeout=\"20\">{STAFF}</Dial>" in text
    assert "attenda in linea" in text
    [call] = await rows(client, CallLog)
    assert (call.direction, call.from_number, call.to_number, call.disposition) == ("in", CALLER, HUB_NUMBER,
                                                                                      "ringing")
    [entry] = await rows(client, TimelineEntry)
    assert (entry.kind, entry.ref_id, entry.customer_id) == ("call", call.id, call.customer_id)
    assert await post(client, VOICE, call_form("CA" + "1" * 32)) is not None
    assert len(await rows(client, CallLog)) == 1


async def test_the_status_callback_completes_the_call_and_its_timeline_line(client: Client) -> None:
    sid = "CA" + "2" * 32
    await post(client, VOICE, call_form(sid))
    response = await post(client, STATUS, call_form(sid, "completed", CallDuration="95",
                                                     RecordingUrl="https://api.twilio.com/rec/RE1"))
    assert response.status == 204
    [call] = await rows(client, CallLog)
    assert (call.disposition, call.duration_s) == ("answered", 95)
    assert call.recording_url == "https://api.twilio.com/rec/RE1"
    [entry] = await rows(client, TimelineEntry)
    assert entry.summary == "in call, answered, 95s"


async def test_a_missed_call_publishes_call_missed_and_stays_missed(client: Client) -> None:
    sid = "CA" + "3" * 32
    await post(client, VOICE, call_form(sid))
    outcome = call_form(sid, "in-progress", DialCallStatus="no-answer", DialCallDuration="0")
    dial = await post(client, DIAL, outcome)
    assert dial.status == 200 and "<Hangup />" in await dial.text()
    await post(client, STATUS, call_form(sid, "completed", CallDuration="21"))
    [call] = await rows(client, CallLog)
    assert call.disposition == "no-answer"
    events = [e.type for e in await rows(client, DomainEvent) if e.type.startswith("call.")]
    assert events == ["call.logged", "call.missed"]
    missed = [e for e in await rows(client, DomainEvent) if e.type == "call.missed"]
    assert missed[0].customer_id == call.customer_id and missed[0].payload["call_id"] == call.id


async def test_a_busy_status_callback_alone_is_a_missed_call(client: Client) -> None:
    await post(client, STATUS, call_form("CA" + "4" * 32, "busy"))
    [call] = await rows(client, CallLog)
    assert call.disposition == "busy"
    assert [e.type for e in await rows(client, DomainEvent) if e.type.startswith("call.")] == ["call.missed"]


@pytest.mark.parametrize("attack", ["tampered", "missing"])
async def test_unsigned_voice_webhooks_are_403_and_store_nothing(client: Client, attack: str) -> None:
    form = call_form("CA" + "5" * 32)
    headers = {} if attack == "missing" else sign(VOICE, {**form, "From": "+393470000000"})
    response = await client.post(VOICE, data=form, headers=headers)
    assert response.status == 403 and await rows(client, CallLog) == []


async def test_agents_log_calls_by_hand_idempotently(client: Client) -> None:
    _, token = await make_agent(rt(client), "agent@hotel.test", "agent")
    _, marketer = await make_agent(rt(client), "mkt@hotel.test", "marketer")
    body = {"number": "347 111 2233", "direction": "out", "started_at": "2026-11-01T10:00:00+01:00",
            "duration_s": 120, "external_id": "desk-42"}
    auth = {"Authorization": f"Bearer {token}"}
    first = await client.post("/api/v1/calls", json=body, headers=auth)
    assert first.status == 201
    created = await first.json()
    again = await client.post("/api/v1/calls", json=body, headers=auth)
    assert again.status == 200 and (await again.json())["id"] == created["id"]
    [call] = await rows(client, CallLog)
    assert (call.to_number, call.direction, call.source, call.logged_by_agent_id) == (CALLER, "out", "manual",
                                                                                     call.logged_by_agent_id)
    assert call.logged_by_agent_id is not None
    bad = await client.post("/api/v1/calls", json={**body, "mood": "happy"}, headers=auth)
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "mood"
    naive = await client.post("/api/v1/calls", json={**body, "started_at": "2026-11-01T10:00"}, headers=auth)
    assert naive.status == 400 and (await naive.json())["error"]["field"] == "started_at"
    wrong = await client.post("/api/v1/calls", json={**body, "number": "12"}, headers=auth)
    assert wrong.status == 400 and (await wrong.json())["error"]["field"] == "number"
    forbidden = await client.post("/api/v1/calls", json=body, headers={"Authorization": f"Bearer {marketer}"})
    assert forbidden.status == 403
    async with rt(client).factory() as session:
        assert (await session.execute(select(func.count()).select_from(CallLog))).scalar_one() == 1

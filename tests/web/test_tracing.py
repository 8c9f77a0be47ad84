"""One trace id from a signed SMS webhook to the send it causes, through the spool's Core insert.

The webhook's X-Request-ID goes into the spooled ingest row; the ingest job runs under it, so the
auto-reply's outbox row (written during that ingest) carries it too, and both jobs log it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import col, select

from hub.app import create_app
from hub.channels.sms.inbound import INGEST_JOB
from hub.channels.sms.wiring import SENDER_KEY
from hub.core.replies import SEND_MESSAGE
from hub.keys import RUNTIME
from hub.ops.logging import configure
from hub.routing.wiring import rules_changed
from hub.runtime import Runtime, inprocess
from hub.settings import Settings
from hub.store.models import OutboxItem, RawInput, Rule, Template
from tests.support.twilio_fake import FakeTwilio, sign, sms_form, sms_settings

Client = TestClient[web.Request, web.Application]
SMS = "/webhooks/twilio/sms"
REPLY = "Buongiorno {{ name }}, la colazione è servita dalle 7 alle 10."


@pytest.fixture
def settings(database_url: str, tmp_path: Path, twilio: FakeTwilio) -> Settings:
    return sms_settings(database_url, tmp_path, twilio, log_format="json")


@pytest.fixture
def logs(settings: Settings) -> Iterator[io.StringIO]:
    """The hub's JSON log lines (hub/ops/logging.py), as `hub serve` writes them; root logger restored."""
    stream, root = io.StringIO(), logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure(settings, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client
        await test_client.app[RUNTIME].extras[SENDER_KEY].aclose()


async def breakfast_rule(rt: Runtime) -> None:
    """A rule that answers questions about breakfast with an SMS auto-reply."""
    async with rt.factory() as session, session.begin():
        session.add(Template(name="breakfast", channel="sms", purpose="transactional", body_text=REPLY))
        session.add(Rule(name="breakfast hours", event="message.received",
                         condition={"field": "message.visible_text", "op": "contains_any", "value": ["colazione"]},
                         actions=[{"type": "auto_reply", "template": "breakfast"}]))
    rules_changed(rt)


async def post_sms(client: Client, sid: str, body: str, sender: str, request_id: str) -> None:
    form = sms_form(sid, body, sender=sender)
    response = await client.post(SMS, data=form, headers={**sign(SMS, form), "X-Request-ID": request_id})
    assert response.status == 200, await response.text()
    assert response.headers["X-Request-ID"] == request_id


async def outbox_rows(rt: Runtime) -> list[OutboxItem]:
    queue = inprocess(rt)
    assert queue is not None
    await queue.drain()
    async with rt.factory() as session:
        return list((await session.execute(select(OutboxItem).order_by(col(OutboxItem.id)))).scalars())


def job_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The one line each outbox job logs when it ends (hub/ops/wiring.py)."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if "job" in line and "outbox_id" in line]


async def test_the_webhook_request_id_follows_the_sms_to_the_auto_reply_it_triggers(
    client: Client, twilio: FakeTwilio, logs: io.StringIO
) -> None:
    rt = client.app[RUNTIME]
    await breakfast_rule(rt)
    await post_sms(client, "SM" + "e" * 32, "A che ora è la colazione?", "+393471112233", "sms-trace-42")
    rows = await outbox_rows(rt)
    assert [(r.kind, r.status, r.payload.get("trace_id")) for r in rows] == [
        (INGEST_JOB, "done", "sms-trace-42"), (SEND_MESSAGE, "done", "sms-trace-42")]
    assert [r["Body"] for r in twilio.requests] == ["Buongiorno +393471112233, la colazione è servita dalle 7 alle 10."]
    lines = job_lines(logs)
    assert sorted((line["job"], line["outbox_id"], line["outcome"], line["trace_id"]) for line in lines) == sorted(
        (r.kind, r.id, "ok", "sms-trace-42") for r in rows)


async def test_webhooks_committed_in_one_spool_batch_keep_their_own_trace_ids(
    client: Client, twilio: FakeTwilio, logs: io.StringIO
) -> None:
    rt = client.app[RUNTIME]
    await breakfast_rule(rt)
    guests = {f"SM{n:032d}": (f"+3934711122{n:02d}", f"trace-{n}") for n in range(6)}
    # Concurrent requests share one spool transaction, written by a task started by one of them.
    await asyncio.gather(*(post_sms(client, sid, "colazione?", sender, trace)
                           for sid, (sender, trace) in guests.items()))
    rows = await outbox_rows(rt)
    async with rt.factory() as session:
        forms = {r.id: r.data.decode() for r in (await session.execute(select(RawInput))).scalars()}
    ingests = [r for r in rows if r.kind == INGEST_JOB]
    assert sorted(r.payload["trace_id"] for r in ingests) == sorted(t for _, t in guests.values())
    for row in ingests:
        sid = next(s for s in guests if f"MessageSid={s}" in forms[row.payload["raw_id"]])
        assert row.payload["trace_id"] == guests[sid][1]
    sends = sorted(r.payload["trace_id"] for r in rows if r.kind == SEND_MESSAGE)
    assert sends == sorted(t for _, t in guests.values()) and len(twilio.requests) == len(guests)
    assert {(line["job"], line["trace_id"]) for line in job_lines(logs)} == {
        (kind, trace) for kind in (INGEST_JOB, SEND_MESSAGE) for _, trace in guests.values()}


async def test_sends_run_as_a_batch_log_each_item_under_its_own_trace_id(
    client: Client, twilio: FakeTwilio, logs: io.StringIO
) -> None:
    rt = client.app[RUNTIME]
    rt.jobs.batch_channels = {SEND_MESSAGE: {"sms"}}  # as email's are: claimed and sent by the batch runner
    await breakfast_rule(rt)
    guests = {f"SM{n:032d}": (f"+3934711133{n:02d}", f"batch-{n}") for n in range(4)}
    await asyncio.gather(*(post_sms(client, sid, "colazione?", sender, trace)
                           for sid, (sender, trace) in guests.items()))
    sends = [r for r in await outbox_rows(rt) if r.kind == SEND_MESSAGE]
    assert [r.status for r in sends] == ["done"] * 4 and len(twilio.requests) == 4
    lines = [line for line in job_lines(logs) if line["job"] == SEND_MESSAGE]
    assert sorted((line["outbox_id"], line["trace_id"], line["outcome"]) for line in lines) == sorted(
        (r.id, r.payload["trace_id"], "ok") for r in sends)

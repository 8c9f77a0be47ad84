"""/metrics after a known workload: SMS webhooks, an email, a reply, rejects; trace ids echoed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import col, select

from hub.app import create_app
from hub.core.ingest import ingest_once
from hub.keys import RUNTIME
from hub.runtime import Runtime, inprocess
from hub.settings import load_settings
from hub.store.models import OutboxItem
from tests.conftest import make_agent
from tests.support.builders import email
from tests.support.twilio_fake import FakeTwilio, sign, sms_form, sms_settings

Client = TestClient[web.Request, web.Application]
SMS = "/webhooks/twilio/sms"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def client(database_url: str, tmp_path: Path, twilio: FakeTwilio) -> AsyncIterator[Client]:
    settings = sms_settings(database_url, tmp_path, twilio, smtp_from="reception@hotel.test")
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def scrape(client: Client, **kw: str) -> Samples:
    response = await client.get("/metrics", headers=kw)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(await response.text()) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def drain(rt: Runtime) -> None:
    queue = inprocess(rt)
    assert queue is not None
    await queue.drain()


async def test_metrics_count_a_known_workload(client: Client, twilio: FakeTwilio) -> None:
    rt: Runtime = client.app[RUNTIME]
    before = await scrape(client)
    for n in range(5):
        form = sms_form(f"SMmetrics{n}", f"hello {n}", sender=f"+3934711100{n:02d}")
        response = await client.post(SMS, data=form, headers={**sign(SMS, form), "X-Request-ID": f"req-{n}"})
        assert response.status == 200 and response.headers["X-Request-ID"] == f"req-{n}"
    forged = sms_form("SMforged")
    assert (await client.post(SMS, data=forged, headers={"X-Twilio-Signature": "nope"})).status == 403
    huge = sms_form("SMhuge", "x" * 300_000)
    assert (await client.post(SMS, data=huge, headers=sign(SMS, huge))).status == 413
    stored = await ingest_once(rt.factory, email("metrics@example.com"), rt.ingest_context)
    await drain(rt)
    _, token = await make_agent(rt, "admin@hotel.test", "admin")
    reply = await client.post(f"/api/v1/conversations/{stored.conversation_id}/reply", json={"body": "Certo!"},
                              headers={"Authorization": f"Bearer {token}", "X-Request-ID": "reply-1"})
    assert reply.status == 202, await reply.text()
    await drain(rt)
    async with rt.factory() as session:  # the send job runs (and logs) under the request's trace id
        sends = (await session.execute(select(OutboxItem).where(col(OutboxItem.kind) == "send_message"))).scalars()
        assert [item.payload.get("trace_id") for item in sends] == ["reply-1"]

    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("hub_ingest_messages_total", channel="sms", outcome="stored") == 5
    assert delta("hub_ingest_messages_total", channel="email", outcome="stored") == 1
    assert delta("hub_ingest_seconds_count", channel="sms") == 5  # timed from the webhook's outbox row
    assert delta("hub_webhook_rejects_total", route="twilio_sms", reason="signature") == 1
    assert delta("hub_webhook_rejects_total", route="twilio_sms", reason="too_large") == 1
    assert delta("hub_http_request_seconds_count", route="twilio_sms", status="2xx") == 5
    assert delta("hub_job_seconds_count", kind="twilio_inbound", outcome="ok") == 5
    assert delta("hub_job_seconds_count", kind="send_message") >= 1
    # No SMTP server is configured: the email reply fails as transient, is counted, and waits for a retry.
    assert delta("hub_job_failures_total", kind="send_message", error="TransientError") == 1
    assert value(after, "hub_outbox_items", kind="send_message", status="queued") == 1
    assert value(after, "hub_outbox_items", kind="twilio_inbound") == 0  # every ingest job ran
    assert ("hub_outbox_stuck_items", frozenset()) in after and ("hub_workers_alive", frozenset()) in after
    assert ("hub_build_info", frozenset({("version", "0.1.0")})) in after


async def test_metrics_token_is_required_when_configured(database_url: str, tmp_path: Path) -> None:
    settings = load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                             metrics_token="scrape-secret-1")
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-1"})).status == 200

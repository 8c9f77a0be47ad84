"""The campaign API and the public unsubscribe/tracking links, over HTTP against the real app."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from hub.campaigns import consent as campaign_consent
from hub.campaigns import tokens
from hub.core.delivery import suppress
from hub.keys import RUNTIME
from hub.store.models import CampaignEvent, CampaignRecipient, Consent, Suppression, TimelineEntry
from tests.conftest import make_agent
from tests.integration.campaigns import seed


async def test_template_validation_segment_preview_and_lifecycle(client: TestClient) -> None:  # type: ignore[type-arg]
    rt = client.app[RUNTIME]
    _, token = await make_agent(rt, "mk@hotel.test", "marketer")
    auth = {"Authorization": f"Bearer {token}"}
    await seed.customers(rt.factory, 12)
    bad = await client.post("/api/v1/templates", headers=auth, json={
        "name": "x", "channel": "email", "subject": "hi", "body_text": "{{ customer.__class__ }}"})
    assert bad.status == 400 and "not allowed" in (await bad.json())["error"]["message"]
    broken = await client.post("/api/v1/templates", headers=auth, json={
        "name": "x", "channel": "email", "subject": "hi", "body_text": "line\n{% if %}"})
    assert broken.status == 400 and "line 2" in (await broken.json())["error"]["message"]
    ok = await client.post("/api/v1/templates", headers=auth, json={
        "name": "promo", "channel": "email", "language": "it", "subject": "Ciao {{ customer.first_name }}",
        "body_text": "Ciao {{ customer.name | default('ospite') }}"})
    assert ok.status == 201
    bad_seg = await client.post("/api/v1/segments", headers=auth, json={
        "name": "s", "condition": {"all": [{"field": "customer.nope", "op": "equals", "value": 1}]}})
    assert bad_seg.status == 400 and "$.all[0]" in (await bad_seg.json())["error"]["message"]
    seg = await client.post("/api/v1/segments", headers=auth, json={
        "name": "rome", "condition": {"field": "customer.timezone", "op": "equals", "value": "Europe/Rome"}})
    segment_id = (await seg.json())["id"]
    preview = await (await client.get(f"/api/v1/segments/{segment_id}/preview", headers=auth)).json()
    assert preview["count"] == 4 and preview["preview"][0]["address"] == seed.address(0)
    made = await client.post("/api/v1/campaigns", headers=auth, json={
        "name": "c", "channel": "email", "template_name": "promo", "segment_id": segment_id})
    campaign_id = (await made.json())["id"]
    assert (await client.post(f"/api/v1/campaigns/{campaign_id}/resume", headers=auth)).status == 409
    scheduled = await client.post(f"/api/v1/campaigns/{campaign_id}/schedule", headers=auth,
                                  json={"at": "2030-01-01T09:00:00Z"})
    assert (await scheduled.json())["status"] == "scheduled"
    paused = await client.post(f"/api/v1/campaigns/{campaign_id}/pause", headers=auth)
    assert (await paused.json())["status"] == "paused"
    stats = await (await client.get(f"/api/v1/campaigns/{campaign_id}/stats", headers=auth)).json()
    assert stats["totals"]["recipients"] == 0
    report = await client.post("/api/v1/segments/import?name=friends&filename=f.csv", headers=auth,
                               data="email,name\nnew@example.com,New\nnot-an-email,Bad\n")
    body = await report.json()
    assert body["imported"] == 1 and body["errors"] == ["f.csv:3: not an email address: 'not-an-email'"]
    page = await client.get(f"/campaigns/{campaign_id}/chart")
    assert page.status == 200 and "/static/campaigns/chart.js" in await page.text()


async def test_one_click_unsubscribe_and_signed_tracking(client: TestClient) -> None:  # type: ignore[type-arg]
    rt = client.app[RUNTIME]
    ids = await seed.customers(rt.factory, 1)
    campaign_id = await seed.campaign(rt.factory)
    async with rt.factory() as session, session.begin():
        row = CampaignRecipient(campaign_id=campaign_id, customer_id=ids[0], channel="email",
                                address=seed.address(0), status="sent")
        session.add(row)
        await session.flush()
        assert row.id is not None
        rid = row.id
    secret = rt.settings.secret_key
    unsub = tokens.sign(secret, "unsub", rid)
    assert (await client.get(f"/u/{unsub}")).status == 200  # confirm page only
    assert (await client.post(f"/u/{tokens.sign(secret, 'open', rid)}")).status == 404  # wrong purpose
    done = await client.post(f"/u/{unsub}", data="List-Unsubscribe=One-Click")
    assert done.status == 200
    target = "https://hotel.example/offer"
    good = tokens.sign(secret, "click", rid, target)
    moved = await client.get(f"/t/c/{good}", params={"u": target}, allow_redirects=False)
    assert moved.status == 302 and moved.headers["Location"] == target
    evil = await client.get(f"/t/c/{good}", params={"u": "https://evil.example/"}, allow_redirects=False)
    assert evil.status == 404
    pixel = await client.get(f"/t/o/{tokens.sign(secret, 'open', rid)}.gif")
    assert pixel.status == 200 and pixel.headers["Content-Type"] == "image/gif"
    async with rt.factory() as session:
        from sqlmodel import select

        consents = (await session.execute(select(Consent))).scalars().all()
        kinds = sorted(e.kind for e in (await session.execute(select(CampaignEvent))).scalars())
    assert [(c.granted, c.source) for c in consents] == [(False, "unsubscribe_link")]
    assert kinds == ["clicked", "opened", "unsubscribed"]


async def test_subscribe_again_from_the_unsubscribed_page(client: TestClient) -> None:  # type: ignore[type-arg]
    rt = client.app[RUNTIME]
    secret = rt.settings.secret_key
    ids = await seed.customers(rt.factory, 2)
    campaign_id = await seed.campaign(rt.factory)
    rids = []
    async with rt.factory() as session, session.begin():
        for n, customer_id in enumerate(ids):
            row = CampaignRecipient(campaign_id=campaign_id, customer_id=customer_id, channel="email",
                                    address=seed.address(n), status="sent")
            session.add(row)
            await session.flush()
            rids.append(int(row.id or 0))
        await suppress(session, "email", seed.address(1), reason="hard_bounce")
    unsub = [tokens.sign(secret, "unsub", rid) for rid in rids]
    for token in unsub:
        page = await client.post(f"/u/{token}", data="List-Unsubscribe=One-Click")
        assert f'action="/u/{token}/resubscribe"' in await page.text()
    assert (await client.get(f"/u/{unsub[0]}/resubscribe")).status == 405  # a link scanner's GET does nothing
    assert (await client.post(f"/u/{tokens.sign(secret, 'open', rids[0])}/resubscribe")).status == 404
    async with rt.factory() as session:
        assert await campaign_consent.suppressed(session, "email", [seed.address(0), seed.address(1)]) == {
            seed.address(0), seed.address(1)}
    for token in unsub:
        again = await client.post(f"/u/{token}/resubscribe")
        assert again.status == 200 and "subscribed again" in await again.text()
    assert (await client.post(f"/u/{unsub[0]}/resubscribe")).status == 200  # twice: nothing more written
    async with rt.factory() as session:
        from sqlmodel import select

        consents = [(c.customer_id, c.granted, c.source)
                    for c in (await session.execute(select(Consent).order_by(Consent.id))).scalars()]
        left = {(s.address, s.reason) for s in (await session.execute(select(Suppression))).scalars()}
        mine = select(TimelineEntry).where(TimelineEntry.kind == "consent", TimelineEntry.customer_id == ids[0])
        timeline = [t.summary for t in (await session.execute(mine.order_by(TimelineEntry.id))).scalars()]
    assert consents == [(ids[0], False, "unsubscribe_link"), (ids[1], False, "unsubscribe_link"),
                        (ids[0], True, "resubscribe_link"), (ids[1], True, "resubscribe_link")]
    assert left == {(seed.address(1), "hard_bounce")}  # only an unsubscribe's own suppression is lifted
    assert timeline == ["Unsubscribed from email marketing (unsubscribe_link)",
                        "Subscribed again to email marketing (resubscribe_link)"]

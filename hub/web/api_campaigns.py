"""Campaigns over HTTP: the marketer's API, the public unsubscribe and tracking endpoints, the chart page."""

from __future__ import annotations

import base64
import html
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.campaigns import consent as campaign_consent
from hub.campaigns import lifecycle, segments, service, stats, tokens, tracking
from hub.campaigns.config import CampaignConfig
from hub.campaigns.render import source_of
from hub.campaigns.templates import TemplateSource, customer_context, pick_variant, render
from hub.keys import RUNTIME
from hub.routing.conditions import ConditionError
from hub.runtime import Runtime
from hub.store.models import Campaign, CampaignRecipient, Customer, Segment, Template
from hub.web.auth import current_agent, requires
from hub.web.errors import ApiError, bad_request, conflict, not_found, parse_body
from hub.web.params import path_id

MARKETING = ("admin", "marketer")
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class TemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["email", "sms", "whatsapp"]
    language: str = Field(default="en", min_length=2, max_length=10)
    purpose: Literal["marketing", "transactional"] = "marketing"
    subject: str | None = None
    body_text: str
    body_html: str | None = None


class SegmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    condition: dict[str, Any]


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["email", "sms", "whatsapp"]
    template_name: str
    segment_id: int | None = None
    local_send_time: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    settings: CampaignConfig = Field(default_factory=CampaignConfig)


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: datetime | None = None


def _campaign_json(c: Campaign) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "channel": c.channel, "status": c.status, "segment_id": c.segment_id,
            "template_name": c.template_name, "scheduled_at": stats.utc_iso(c.scheduled_at),
            "local_send_time": c.local_send_time, "settings": c.settings, "started_at": stats.utc_iso(c.started_at),
            "finished_at": stats.utc_iso(c.finished_at), "materialised_at": stats.utc_iso(c.materialised_at)}


def _service_error(exc: service.CampaignError) -> ApiError:
    return ApiError(400, "invalid_field", str(exc), exc.field)


# --- templates and segments ------------------------------------------------------------------


@requires(*MARKETING)
async def save_template(request: web.Request) -> web.Response:
    """Create or replace a template variant; syntax and sandbox problems are 400 naming the part."""
    body = await parse_body(request, TemplateBody)
    async with request.app[RUNTIME].factory() as session, session.begin():
        try:
            row = await service.save_template(session, TemplateSource(**body.model_dump()))
        except service.CampaignError as exc:
            raise _service_error(exc) from None
    return web.json_response({"id": row.id, "name": row.name, "channel": row.channel, "language": row.language},
                             status=201)


@requires(*MARKETING)
async def preview_template(request: web.Request) -> web.Response:
    """Render a template for one customer (`customer_id` query) in that customer's language."""
    name, channel = request.match_info["name"], request.query.get("channel", "email")
    customer_id = int(request.query.get("customer_id", "0") or 0)
    async with request.app[RUNTIME].factory() as session:
        customer = await session.get(Customer, customer_id)
        if customer is None:
            raise not_found("customer")
        rows = (await session.execute(select(Template).where(col(Template.name) == name,
                                                             col(Template.channel) == channel))).scalars().all()
    source = pick_variant([source_of(t) for t in rows], customer.language)
    if source is None:
        raise not_found("template")
    context = customer_context(customer.model_dump(), {}, None, {"id": None, "name": "preview"},
                               {"unsubscribe_url": "#unsubscribe"})
    out = render(source, context)
    return web.json_response({"language": source.language, "subject": out.subject, "body_text": out.body_text,
                              "body_html": out.body_html, "segments": out.segments})


@requires(*MARKETING)
async def save_segment(request: web.Request) -> web.Response:
    """Create or replace a segment; a bad condition is 400 with the JSON path of the bad node."""
    body = await parse_body(request, SegmentBody)
    async with request.app[RUNTIME].factory() as session, session.begin():
        try:
            row = await service.save_segment(session, body.name, body.condition)
        except service.CampaignError as exc:
            raise _service_error(exc) from None
    return web.json_response({"id": row.id, "name": row.name, "condition": row.condition}, status=201)


async def _segment(session: AsyncSession, segment_id: int) -> Segment:
    row = await session.get(Segment, segment_id)
    if row is None:
        raise not_found("segment")
    return row


@requires(*MARKETING)
async def segment_preview(request: web.Request) -> web.Response:
    """Live count and the first recipients of a segment on a channel."""
    channel = request.query.get("channel", "email")
    async with request.app[RUNTIME].factory() as session:
        segment = await _segment(session, path_id(request))
        try:
            total = await segments.count(session, segment.condition, channel)
            first = await segments.preview(session, segment.condition, channel)
        except ConditionError as exc:
            raise bad_request(str(exc), "condition") from None
    return web.json_response({"count": total, "preview": first})


@requires(*MARKETING)
async def segment_import(request: web.Request) -> web.Response:
    """A static list from a CSV body (`?name=`); the report names file and line of every bad row."""
    name = request.query.get("name", "").strip()
    if not name:
        raise bad_request("name the list with ?name=", "name")
    data = await request.text()
    async with request.app[RUNTIME].factory() as session, session.begin():
        report = await segments.import_csv(session, name, data, filename=request.query.get("filename", "upload.csv"),
                                           region=request.app[RUNTIME].settings.default_region)
    return web.json_response(report.as_dict(), status=200 if not report.errors else 207)


# --- campaigns --------------------------------------------------------------------------------


@requires(*MARKETING)
async def create_campaign(request: web.Request) -> web.Response:
    """A draft campaign."""
    body = await parse_body(request, CampaignBody)
    agent = current_agent(request)
    async with request.app[RUNTIME].factory() as session, session.begin():
        try:
            row = await service.create(session, name=body.name, channel=body.channel, template_name=body.template_name,
                                       segment_id=body.segment_id, config=body.settings,
                                       local_send_time=body.local_send_time, actor=agent.email, agent_id=agent.id)
        except service.CampaignError as exc:
            raise _service_error(exc) from None
    return web.json_response(_campaign_json(row), status=201)


@requires(*MARKETING)
async def list_campaigns(request: web.Request) -> web.Response:
    """Campaigns, newest first (keyset: `before` id)."""
    before = int(request.query.get("before", "0") or 0)
    query = select(Campaign).order_by(col(Campaign.id).desc()).limit(50)
    if before:
        query = query.where(col(Campaign.id) < before)
    async with request.app[RUNTIME].factory() as session:
        rows = (await session.execute(query)).scalars().all()
    return web.json_response({"items": [_campaign_json(c) for c in rows]})


@requires(*MARKETING)
async def get_campaign(request: web.Request) -> web.Response:
    """One campaign with its totals."""
    async with request.app[RUNTIME].factory() as session:
        row = await session.get(Campaign, path_id(request))
        if row is None:
            raise not_found("campaign")
        totals = await stats.totals(session, path_id(request))
    return web.json_response({**_campaign_json(row), "totals": totals})


@requires(*MARKETING)
async def campaign_action(request: web.Request) -> web.Response:
    """schedule (body `at`, default now), pause, resume or cancel; 409 when the state forbids it."""
    action, campaign_id = request.match_info["action"], path_id(request)
    actor = current_agent(request).email
    at = (await parse_body(request, ScheduleBody)).at if action == "schedule" and request.can_read_body else None
    async with request.app[RUNTIME].factory() as session, session.begin():
        try:
            if action == "schedule":
                row = await service.schedule(session, campaign_id, at, actor=actor)
            elif action == "resume":
                row = await service.resume(session, campaign_id, actor=actor)
            else:
                row = await lifecycle.transition(session, campaign_id, action, actor=actor)
        except lifecycle.TransitionError as exc:
            raise conflict(str(exc), current=exc.current) from None
    return web.json_response(_campaign_json(row))


@requires(*MARKETING)
async def campaign_stats(request: web.Request) -> web.Response:
    """Totals and a time series (`bucket` minute|hour|day) for the chart."""
    bucket = request.query.get("bucket", "hour")
    if bucket not in ("minute", "hour", "day"):
        raise bad_request("bucket is minute, hour or day", "bucket")
    async with request.app[RUNTIME].factory() as session:
        if await session.get(Campaign, path_id(request)) is None:
            raise not_found("campaign")
        totals = await stats.totals(session, path_id(request))
        points = await stats.series(session, path_id(request), bucket)  # type: ignore[arg-type]
    return web.json_response({"totals": totals, "series": points, "bucket": bucket})


async def chart_page(request: web.Request) -> web.Response:
    """The chart page; its script reads the stats API with the session cookie."""
    campaign_id = path_id(request)
    page = CHART_TEMPLATE.replace("{{id}}", str(campaign_id))
    return web.Response(text=page, content_type="text/html")


CHART_TEMPLATE = (Path(__file__).parent / "templates" / "campaign_chart.html").read_text(encoding="utf-8")


# --- public: unsubscribe and tracking ------------------------------------------------------------


async def _recipient_for(request: web.Request, purpose: str, extra: str = "") -> tuple[int, Runtime]:
    rt = request.app[RUNTIME]
    try:
        rid = tokens.verify(rt.settings.secret_key, purpose, request.match_info["token"], extra)
    except tokens.BadToken:
        raise web.HTTPNotFound(text="This link is not valid.") from None
    return rid, rt


async def unsubscribe_page(request: web.Request) -> web.Response:
    """GET: a confirm page (mail scanners follow links, so GET itself changes nothing)."""
    await _recipient_for(request, "unsub")
    token = html.escape(request.match_info["token"])
    return web.Response(content_type="text/html", text=(
        "<!doctype html><title>Unsubscribe</title><h1>Unsubscribe</h1>"
        f"<form method=\"post\" action=\"/u/{token}\"><button type=\"submit\">Unsubscribe me</button></form>"))


# campaign_consent.unsubscribe or .resubscribe: (session, recipient, *, source, detail) -> changed
ConsentChange = Callable[..., Awaitable[bool]]


async def _change_consent(request: web.Request, change: ConsentChange, source: str) -> None:
    """Apply a consent change to the recipient the signed unsubscribe link names; 404 for a bad link."""
    rid, rt = await _recipient_for(request, "unsub")
    async with rt.factory() as session, session.begin():
        recipient = await session.get(CampaignRecipient, rid)
        if recipient is None:
            raise web.HTTPNotFound(text="This link is not valid.")
        await change(session, recipient, source=source, detail=request.headers.get("User-Agent", "")[:200] or None)


async def unsubscribe(request: web.Request) -> web.Response:
    """POST (RFC 8058 one-click, or the confirm form): withdraw marketing consent at once."""
    await _change_consent(request, campaign_consent.unsubscribe, "unsubscribe_link")
    token = html.escape(request.match_info["token"])
    return web.Response(content_type="text/html", text=(
        "<!doctype html><title>Unsubscribed</title><h1>You are unsubscribed.</h1>"
        f"<form method=\"post\" action=\"/u/{token}/resubscribe\"><p>Unsubscribed by mistake? "
        "<button type=\"submit\">Subscribe again</button></p></form>"))


async def resubscribe(request: web.Request) -> web.Response:
    """POST from the unsubscribed page: consent again, with the same signed link (never by GET)."""
    await _change_consent(request, campaign_consent.resubscribe, "resubscribe_link")
    return web.Response(content_type="text/html", text="<!doctype html><title>Subscribed</title>"
                                                       "<h1>You are subscribed again.</h1>")


async def open_pixel(request: web.Request) -> web.Response:
    """The 1x1 GIF; records the first open."""
    rid, rt = await _recipient_for(request, "open")
    async with rt.factory() as session, session.begin():
        if (recipient := await session.get(CampaignRecipient, rid)) is not None:
            await tracking.record(session, recipient, "opened")
    return web.Response(body=PIXEL, content_type="image/gif", headers={"Cache-Control": "no-store"})


async def click(request: web.Request) -> web.Response:
    """Redirect to the signed target only: the URL is inside the MAC, so this is no open redirect."""
    target = request.query.get("u", "")
    if not target.startswith(("https://", "http://")):
        raise web.HTTPNotFound(text="This link is not valid.")
    rid, rt = await _recipient_for(request, "click", target)
    async with rt.factory() as session, session.begin():
        if (recipient := await session.get(CampaignRecipient, rid)) is not None:
            await tracking.record(session, recipient, "clicked", target[:500])
    raise web.HTTPFound(target)

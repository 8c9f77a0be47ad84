"""Claiming a chunk and turning its rows into Outbound envelopes, in one transaction.

The claim (`queued -> sending`, only while the campaign runs), the consent checks, the rendering
and the outbound Message, TimelineEntry and Conversation rows are written with a handful of
set-based statements per chunk and no ORM object per row, so a worker's cost per message stays
flat however large the campaign is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import and_, bindparam, exists, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.campaigns import consent, render
from hub.campaigns.config import CampaignConfig, load
from hub.campaigns.record import EVENTS
from hub.campaigns.templates import Rendered, TemplateSource, customer_context, needs, pick_variant, sms_segments
from hub.core.envelopes import Address, AddressKind, Channel, DeliveryState, Outbound
from hub.core.replies import email_message_id
from hub.core.threading import new_thread_token
from hub.settings import Settings
from hub.store import ids as store_ids
from hub.store.bulk import Binder, DriverStatement, session_binder
from hub.store.engine import SessionFactory
from hub.store.models import (
    Campaign,
    CampaignRecipient,
    Case,
    Conversation,
    Customer,
    Message,
    TimelineEntry,
    table,
)
from hub.store.types import utcnow

_recipient = table(CampaignRecipient).c
_customer = table(Customer).c
_conversation = table(Conversation).c
_message = table(Message).c
_campaign = table(Campaign).c
_case = table(Case).c

_CONVERSATION = DriverStatement.insert(table(Conversation), (
    "id", "customer_id", "channel", "subject", "status", "priority", "tags", "thread_token", "created_at",
    "last_message_at", "updated_at"))
_MESSAGE = DriverStatement.insert(table(Message), (
    "id", "conversation_id", "customer_id", "direction", "channel", "external_id", "sender", "recipient", "subject",
    "body_text", "body_html", "thread_refs", "flags", "headers", "delivery_status", "created_at"))
_TIMELINE = DriverStatement.insert(table(TimelineEntry), (
    "customer_id", "conversation_id", "kind", "ref_id", "channel", "summary", "data", "occurred_at"))
_LINK_MESSAGE = DriverStatement(
    update(table(CampaignRecipient)).where(_recipient.id == bindparam("rid")).values(message_id=bindparam("mid")),
    ("rid", "mid"))


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What a batch job reads once: the campaign, its settings and templates (edits apply from the next job)."""

    campaign_id: int
    name: str
    channel: str
    config: CampaignConfig
    names: dict[str | None, str]
    sources: dict[str, list[TemplateSource]]
    purpose: str
    sender: Address
    needs_case: bool


@dataclass(frozen=True, slots=True)
class Item:
    """One message ready to go."""

    recipient_id: int
    attempts: int
    outbound: Outbound


@dataclass
class Prepared:
    """A chunk after the claim, checks and rendering: what to send, and how many were dropped on the way."""

    campaign_id: int
    items: list[Item] = field(default_factory=list)
    claimed: int = 0
    skipped: int = 0
    failed: int = 0
    lowest: int | None = None  # the smallest row id claimed


@dataclass(slots=True)
class _Row:
    id: int
    customer_id: int
    channel: str
    address: str
    variant: str | None
    attempts: int
    message_id: int | None
    customer: Mapping[str, Any] = field(default_factory=dict)
    rendered: Rendered | None = None
    thread_token: str = ""
    unsubscribe_url: str | None = None


def template_names(campaign: Campaign, config: CampaignConfig) -> dict[str | None, str]:
    """variant -> template name (None: the campaign's own template)."""
    names: dict[str | None, str] = {None: campaign.template_name}
    if config.ab is not None:
        names.update(config.ab.variants)
    return names


def _sender(channel: str, config: CampaignConfig, settings: Settings) -> Address:
    if channel == "email":
        return Address(AddressKind.EMAIL, config.sender or settings.smtp_from, config.sender_name)
    return Address(AddressKind.PHONE, config.sender or settings.twilio_from or "", None)


async def load_plan(session: AsyncSession, campaign: Campaign, settings: Settings) -> SendPlan:
    """The campaign's send plan: settings parsed and every template variant loaded once."""
    assert campaign.id is not None
    config = load(campaign.settings)
    names = template_names(campaign, config)
    sources = await render.load_sources(session, sorted(set(names.values())), campaign.channel)
    # Transactional templates (survey, booking notes) answer to their own consent, not marketing's.
    own = sources.get(campaign.template_name) or []
    purpose = "transactional" if own and own[0].purpose == "transactional" else "marketing"
    every = [s for variants in sources.values() for s in variants]
    try:
        needs_case = any("case" in needs(s) for s in every)
    except TemplateError:  # edited since it was validated: each row reports the error when rendered
        needs_case = True
    return SendPlan(campaign.id, campaign.name, campaign.channel, config, names, sources, purpose,
                    _sender(campaign.channel, config, settings), needs_case)


async def _claim(session: AsyncSession, campaign_id: int, ids: Sequence[int] | None, limit: int, now: datetime,
                 worker: str, below: int | None = None) -> list[_Row]:
    """Take the rows still queued and due, only while the campaign runs (pause and cancel stop it here).

    `ids` None: the campaign's next due rows from the top of the id range (where batch jobs, which
    walk up from the bottom of theirs, arrive last), skipping rows another claim holds locked;
    `below`: only rows under that id. Without it each pull would step again over the index
    entries of every row pulled before it (until a vacuum clears them): quadratic in the campaign.
    """
    due = and_(_recipient.campaign_id == campaign_id, _recipient.status == "queued",
               or_(_recipient.send_after.is_(None), _recipient.send_after <= now))
    if ids is None:
        under = _recipient.id < below if below is not None else true()
        pick = (select(_recipient.id).where(due, under).order_by(_recipient.id.desc()).limit(limit)
                .with_for_update(skip_locked=True))
        chosen = _recipient.id.in_(pick.scalar_subquery())
    else:
        chosen = _recipient.id.in_(list(ids))
    running = exists().where(_campaign.id == campaign_id, _campaign.status == "running")
    rows = await session.execute(
        update(table(CampaignRecipient)).where(chosen, due, running)
        .values(status="sending", claimed_at=now, worker=worker, attempts=_recipient.attempts + 1)
        .returning(_recipient.id, _recipient.customer_id, _recipient.channel, _recipient.address, _recipient.variant,
                   _recipient.attempts, _recipient.message_id)
    )
    return sorted((_Row(*r) for r in rows.all()), key=lambda r: r.id)


async def is_running(session: AsyncSession, campaign_id: int) -> bool:
    """Whether the campaign is running right now (one indexed read)."""
    status = await session.execute(select(_campaign.status).where(_campaign.id == campaign_id))
    return status.scalar_one_or_none() == "running"


async def _customers(session: AsyncSession, rows: list[_Row]) -> None:
    found = await session.execute(
        select(_customer.id, _customer.display_name, _customer.language, _customer.lifecycle_stage, _customer.tags,
               _customer.attributes, _customer.timezone)
        .where(_customer.id.in_(sorted({r.customer_id for r in rows}))))
    by_id = {int(c.id): c._asdict() for c in found.all()}
    for row in rows:
        row.customer = by_id.get(row.customer_id, {})


async def _cases(session: AsyncSession, customer_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    rows = await session.execute(
        select(_case.customer_id, _case.state, _case.workflow, _case.data)
        .where(_case.customer_id.in_(list(customer_ids)), _case.closed_at.is_(None)).order_by(_case.opened_at)
    )
    return {int(c.customer_id): {"state": c.state, "workflow": c.workflow, "data": dict(c.data)} for c in rows}


async def _mark(session: AsyncSession, ids: Sequence[int], status: str, reason: str) -> None:
    if ids:
        await session.execute(update(table(CampaignRecipient)).where(_recipient.id.in_(list(ids)))
                              .values(status=status, error=reason, claimed_at=None, worker=None))


def _links(settings: Settings, recipient_id: int) -> render.Links:
    return render.Links(settings.secret_key, settings.public_url.rstrip("/"), settings.mail_domain, recipient_id)


def _render_all(rows: list[_Row], plan: SendPlan, settings: Settings,
                cases: dict[int, dict[str, Any]]) -> dict[int, str]:
    """Render each row in place; returns recipient id -> why it could not be rendered."""
    problems: dict[int, str] = {}
    kind = "email" if plan.channel == "email" else "phone"
    campaign = {"id": plan.campaign_id, "name": plan.name}
    for row in rows:
        name = plan.names.get(row.variant, plan.names[None])
        source = pick_variant(plan.sources.get(name, []), row.customer.get("language"), plan.config.default_language)
        if source is None:
            problems[row.id] = f"no {plan.channel} template {name!r}"
            continue
        links = _links(settings, row.id)
        row.unsubscribe_url = links.unsubscribe_url()
        context = customer_context(row.customer, {kind: row.address}, cases.get(row.customer_id), campaign,
                                   {"unsubscribe_url": row.unsubscribe_url})
        try:
            row.rendered = render.personalise(source, context, links, track=plan.config.track)
        except TemplateError as exc:  # templates are validated at save; one edited since fails here, per row
            problems[row.id] = f"template error: {exc}"
    return problems


async def _latest_conversations(session: AsyncSession, customer_ids: list[int], channel: str) -> dict[int, Any]:
    """customer id -> (conversation id, thread token) of the customer's latest conversation on the channel."""
    latest = (select(func.max(_conversation.id)).where(_conversation.customer_id.in_(customer_ids),
                                                       _conversation.channel == channel)
              .group_by(_conversation.customer_id))
    found = await session.execute(select(_conversation.id, _conversation.customer_id, _conversation.thread_token)
                                  .where(_conversation.id.in_(latest)))
    return {int(c.customer_id): (int(c.id), str(c.thread_token)) for c in found.all()}


async def _open_conversations(session: AsyncSession, fresh: dict[int, int], plan: SendPlan, subject: str | None,
                              bind: Binder, now: Any) -> dict[int, Any]:
    """A resolved conversation for each customer without one (customer id -> new id), as campaigns start them."""
    made = {cid: (conversation_id, new_thread_token()) for cid, conversation_id in fresh.items()}
    await _CONVERSATION.run(session, [
        (conversation_id, cid, plan.channel, subject, "resolved", "normal", bind.json([]), token, now, now, now)
        for cid, (conversation_id, token) in made.items()])
    return made


async def _new_messages(session: AsyncSession, rows: list[_Row], plan: SendPlan, settings: Settings) -> dict[int, Any]:
    """Write each row's outbound Message (and its timeline entry), so replies and receipts find it."""
    bind = session_binder(session)
    now = bind.time(utcnow())
    first = rows[0].rendered
    known = await _latest_conversations(session, sorted({row.customer_id for row in rows}), plan.channel)
    fresh = sorted({row.customer_id for row in rows} - set(known))
    fresh_ids = await store_ids.allocate_many(session, {"conversation": len(fresh), "message": len(rows)})
    known.update(await _open_conversations(session, dict(zip(fresh, fresh_ids["conversation"], strict=True)), plan,
                                           first.subject if first else None, bind, now))
    for row in rows:
        row.thread_token = known[row.customer_id][1]
    conversations = {cid: conversation_id for cid, (conversation_id, _) in known.items()}
    message_ids = fresh_ids["message"]
    summary, timeline_data = f"campaign {plan.name}"[:200], bind.json({"campaign_id": plan.campaign_id,
                                                                        "direction": "out"})
    messages, timeline = [], []
    written: dict[int, Any] = {}
    for row, message_id in zip(rows, message_ids, strict=True):
        rendered = row.rendered
        assert rendered is not None
        external_id = email_message_id(settings.mail_domain) if row.channel == "email" else None
        conversation_id = conversations[row.customer_id]
        messages.append((message_id, conversation_id, row.customer_id, "out", row.channel, external_id,
                         plan.sender.value, row.address, rendered.subject, rendered.body_text, rendered.body_html,
                         bind.json([]), bind.json([]), bind.json({"campaign_id": plan.campaign_id,
                                                                  "recipient_id": row.id, "variant": row.variant}),
                         DeliveryState.SENDING.value, now))
        timeline.append((row.customer_id, conversation_id, "campaign", message_id, row.channel, summary,
                         timeline_data, now))
        row.message_id = message_id
        written[row.id] = (message_id, rendered.body_text, rendered.subject, rendered.body_html, external_id)
    await _MESSAGE.run(session, messages)
    await _TIMELINE.run(session, timeline)
    await _LINK_MESSAGE.run(session, [(row.id, row.message_id) for row in rows])
    return written


async def _reused_messages(session: AsyncSession, rows: list[_Row]) -> dict[int, Any]:
    """A retried row sends the message written on its first attempt, in that message's thread.

    Rows whose message cannot be found are left out: they get a new one.
    """
    if not rows:
        return {}
    found = await session.execute(
        select(_message.id, _message.body_text, _message.subject, _message.body_html, _message.external_id,
               _conversation.thread_token)
        .join(table(Conversation), _conversation.id == _message.conversation_id)
        .where(_message.id.in_([r.message_id for r in rows])))
    by_id = {int(m.id): m for m in found.all()}
    out: dict[int, Any] = {}
    for row in rows:
        if (m := by_id.get(row.message_id or 0)) is not None:
            row.thread_token = str(m.thread_token)
            out[row.id] = (int(m.id), m.body_text, m.subject, m.body_html, m.external_id)
    return out


def _outbound(row: _Row, message: Any, plan: SendPlan, settings: Settings) -> Outbound:
    message_id, body_text, subject, body_html, external_id = message
    headers = (render.email_headers(_links(settings, row.id), plan.campaign_id, row.unsubscribe_url)
               if row.channel == "email" else ())
    kind = AddressKind.EMAIL if row.channel == "email" else AddressKind.PHONE
    segments = row.rendered.segments if row.rendered else (
        sms_segments(body_text) if row.channel in {"sms", "whatsapp"} else None)
    return Outbound(
        channel=Channel(row.channel), message_id=message_id, sender=plan.sender,
        recipient=Address(kind, row.address, row.customer.get("display_name") or None), body_text=body_text,
        subject=subject, body_html=body_html, headers=headers, external_id=external_id,
        meta={"thread_token": row.thread_token, "campaign_id": plan.campaign_id, "recipient_id": row.id,
              "bulk": True, "purpose": plan.purpose, "variant": row.variant, "segments": segments},
    )


async def _drop(session: AsyncSession, plan: SendPlan, refused: dict[int, str], problems: dict[int, str],
                variants: dict[int, str | None]) -> None:
    """Skip refused rows and fail unrenderable ones (with a `failed` event each)."""
    for reason in sorted(set(refused.values())):
        await _mark(session, [rid for rid, why in refused.items() if why == reason], "skipped", reason)
    for rid, why in problems.items():
        await _mark(session, [rid], "failed", why)
    if problems:
        bind = session_binder(session)
        at = bind.time(utcnow())
        await EVENTS.run(session, [(plan.campaign_id, rid, variants.get(rid), "failed", why, at)
                                   for rid, why in problems.items()])


async def claim_and_prepare(factory: SessionFactory, settings: Settings, plan: SendPlan, ids: Sequence[int] | None,
                            now: datetime, worker: str, below: int | None = None) -> Prepared | None:
    """Claim, check and render the due rows among `ids` (None: the next chunk's worth under `below`)
    and write their messages; None once the campaign is not running."""
    out = Prepared(plan.campaign_id)
    async with factory() as session, session.begin():
        rows = await _claim(session, plan.campaign_id, ids, settings.campaign_chunk_size, now, worker, below)
        if not rows:
            return out if await is_running(session, plan.campaign_id) else None
        out.claimed, out.lowest = len(rows), min(r.id for r in rows)
        policy = consent.Policy(plan.campaign_id, plan.channel, plan.purpose, plan.config.require_opt_in,
                                plan.config.frequency_cap)
        refused = await consent.refusals(session, policy, [consent.Candidate(r.id, r.customer_id, r.address)
                                                           for r in rows], now)
        live = [r for r in rows if r.id not in refused]
        await _customers(session, live)
        messages = await _reused_messages(session, [r for r in live if r.message_id is not None])
        fresh = [r for r in live if r.id not in messages]
        cases = await _cases(session, [r.customer_id for r in fresh]) if plan.needs_case and fresh else {}
        problems = _render_all(fresh, plan, settings, cases)
        await _drop(session, plan, refused, problems, {r.id: r.variant for r in live})
        out.skipped, out.failed = len(refused), len(problems)
        fresh = [r for r in fresh if r.id not in problems]
        if fresh:
            messages.update(await _new_messages(session, fresh, plan, settings))
        for row in live:
            if row.id in messages:
                out.items.append(Item(row.id, row.attempts, _outbound(row, messages[row.id], plan, settings)))
    return out

"""Turning claimed rows into Outbound envelopes: checks, rendering and the outbound Message rows.

Everything is read and written per chunk in a handful of queries, never per row, so a worker's
cost per message stays flat however large the campaign is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.campaigns import consent, render
from hub.campaigns.config import CampaignConfig
from hub.campaigns.templates import TemplateSource, customer_context, pick_variant
from hub.core.envelopes import Address, AddressKind, Channel, Outbound
from hub.core.replies import email_message_id
from hub.core.threading import new_thread_token
from hub.settings import Settings
from hub.store.engine import SessionFactory
from hub.store.models import (
    Campaign,
    CampaignEvent,
    CampaignRecipient,
    Case,
    Conversation,
    Customer,
    Message,
    TimelineEntry,
)


@dataclass(frozen=True, slots=True)
class Item:
    """One message ready to go."""

    recipient_id: int
    attempts: int
    outbound: Outbound


@dataclass
class Prepared:
    """A chunk after checks and rendering: what to send, and how many were dropped on the way."""

    campaign_id: int
    items: list[Item] = field(default_factory=list)
    skipped: int = 0
    failed: int = 0


@dataclass
class _Row:
    recipient: CampaignRecipient
    customer: Customer
    rendered: Any = None
    source: TemplateSource | None = None
    message: Message | None = None


def template_names(campaign: Campaign, config: CampaignConfig) -> dict[str | None, str]:
    """variant -> template name (None: the campaign's own template)."""
    names: dict[str | None, str] = {None: campaign.template_name}
    if config.ab is not None:
        names.update(config.ab.variants)
    return names


async def _load(session: AsyncSession, ids: Sequence[int]) -> list[_Row]:
    rows = await session.execute(
        select(CampaignRecipient, Customer).join(Customer, col(Customer.id) == col(CampaignRecipient.customer_id))
        .where(col(CampaignRecipient.id).in_(list(ids))).order_by(col(CampaignRecipient.id))
    )
    return [_Row(r, c) for r, c in rows.all()]


async def _cases(session: AsyncSession, customer_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    rows = await session.execute(
        select(Case).where(col(Case.customer_id).in_(list(customer_ids)), col(Case.closed_at).is_(None))
        .order_by(col(Case.opened_at))
    )
    return {c.customer_id: {"state": c.state, "workflow": c.workflow, "data": dict(c.data)} for c in rows.scalars()}


async def _mark(session: AsyncSession, ids: Sequence[int], status: str, reason: str) -> None:
    if ids:
        await session.execute(update(CampaignRecipient).where(col(CampaignRecipient.id).in_(list(ids)))
                              .values(status=status, error=reason, claimed_at=None, worker=None)
                              .execution_options(synchronize_session=False))


def _links(settings: Settings, recipient_id: int) -> render.Links:
    return render.Links(settings.secret_key, settings.public_url.rstrip("/"), settings.mail_domain, recipient_id)


def _render_all(rows: list[_Row], sources: dict[str, list[TemplateSource]], names: dict[str | None, str],
                campaign: Campaign, config: CampaignConfig, settings: Settings,
                cases: dict[int, dict[str, Any]]) -> dict[int, str]:
    """Render each row in place; returns recipient id -> why it could not be rendered."""
    problems: dict[int, str] = {}
    for row in rows:
        r = row.recipient
        assert r.id is not None
        variants = sources.get(names.get(r.variant, campaign.template_name), [])
        source = pick_variant(variants, row.customer.language, config.default_language)
        if source is None:
            problems[r.id] = f"no {campaign.channel} template {names.get(r.variant)!r}"
            continue
        links = _links(settings, r.id)
        kind = "email" if r.channel == "email" else "phone"
        context = customer_context(row.customer.model_dump(), {kind: r.address}, cases.get(r.customer_id),
                                   {"id": campaign.id, "name": campaign.name},
                                   {"unsubscribe_url": links.unsubscribe_url()})
        try:
            row.rendered = render.personalise(source, context, links, track=config.track)
        except TemplateError as exc:  # templates are validated at save; one edited since fails here, per row
            problems[r.id] = f"template error: {exc}"
            continue
        row.source = source
    return problems


async def _conversations(session: AsyncSession, rows: list[_Row], channel: str,
                         subject: str | None) -> dict[int, Conversation]:
    """The customer's latest conversation on the channel, or a new resolved one for the campaign."""
    customer_ids = sorted({row.recipient.customer_id for row in rows})
    latest = (select(func.max(Conversation.id)).where(col(Conversation.customer_id).in_(customer_ids),
                                                      col(Conversation.channel) == channel)
              .group_by(col(Conversation.customer_id)))
    found = await session.execute(select(Conversation).where(col(Conversation.id).in_(latest)))
    by_customer = {c.customer_id: c for c in found.scalars()}
    new = [Conversation(customer_id=cid, channel=channel, subject=subject, status="resolved",
                        thread_token=new_thread_token()) for cid in customer_ids if cid not in by_customer]
    session.add_all(new)
    await session.flush()
    by_customer.update({c.customer_id: c for c in new})
    return by_customer


def _sender(campaign: Campaign, config: CampaignConfig, settings: Settings) -> Address:
    if campaign.channel == "email":
        return Address(AddressKind.EMAIL, config.sender or settings.smtp_from, config.sender_name)
    return Address(AddressKind.PHONE, config.sender or settings.twilio_from or "", None)


async def _messages(session: AsyncSession, rows: list[_Row], campaign: Campaign, config: CampaignConfig,
                    settings: Settings) -> dict[int, Conversation]:
    """Create (or, on a retry, reuse) each row's outbound Message, so replies and receipts find it."""
    conversations = await _conversations(session, rows, campaign.channel, rows[0].rendered.subject)
    reuse = [row.recipient.message_id for row in rows if row.recipient.message_id is not None]
    existing = {}
    if reuse:
        found = await session.execute(select(Message).where(col(Message.id).in_(reuse)))
        existing = {m.id: m for m in found.scalars()}
    sender = _sender(campaign, config, settings)
    for row in rows:
        r = row.recipient
        row.message = existing.get(r.message_id) if r.message_id is not None else None
        if row.message is None:
            row.message = Message(
                conversation_id=int(conversations[r.customer_id].id or 0), customer_id=r.customer_id, direction="out",
                channel=r.channel, sender=sender.value, recipient=r.address, subject=row.rendered.subject,
                body_text=row.rendered.body_text, body_html=row.rendered.body_html, delivery_status="sending",
                external_id=email_message_id(settings.mail_domain) if r.channel == "email" else None,
                headers={"campaign_id": campaign.id, "recipient_id": r.id, "variant": r.variant},
            )
            session.add(row.message)
    await session.flush()
    for row in rows:
        if row.recipient.message_id is None and row.message is not None:
            session.add(TimelineEntry(customer_id=row.recipient.customer_id,
                                      conversation_id=row.message.conversation_id, kind="campaign",
                                      ref_id=row.message.id, channel=row.recipient.channel,
                                      summary=f"campaign {campaign.name}"[:200],
                                      data={"campaign_id": campaign.id, "direction": "out"}))
            row.recipient.message_id = row.message.id
    return conversations


def _outbound(row: _Row, campaign: Campaign, config: CampaignConfig, settings: Settings,
              conversation: Conversation, purpose: str) -> Outbound:
    r, message = row.recipient, row.message
    assert r.id is not None and campaign.id is not None and message is not None and message.id is not None
    headers = render.email_headers(_links(settings, r.id), campaign.id) if r.channel == "email" else ()
    kind = AddressKind.EMAIL if r.channel == "email" else AddressKind.PHONE
    return Outbound(
        channel=Channel(r.channel), message_id=message.id, sender=_sender(campaign, config, settings),
        recipient=Address(kind, r.address, row.customer.display_name or None), body_text=message.body_text,
        subject=message.subject, body_html=message.body_html, headers=headers, external_id=message.external_id,
        meta={"thread_token": conversation.thread_token, "campaign_id": campaign.id, "recipient_id": r.id,
              "bulk": True, "purpose": purpose, "variant": r.variant, "segments": row.rendered.segments},
    )


async def prepare(factory: SessionFactory, settings: Settings, campaign: Campaign, config: CampaignConfig,
                  ids: Sequence[int], now: datetime) -> Prepared:
    """Check and render claimed rows, write their messages, and return what to send."""
    assert campaign.id is not None
    out = Prepared(campaign.id)
    async with factory() as session, session.begin():
        rows = await _load(session, ids)
        names = template_names(campaign, config)
        sources = await render.load_sources(session, sorted(set(names.values())), campaign.channel)
        # Transactional templates (survey, booking notes) answer to their own consent, not marketing's.
        own = sources.get(campaign.template_name) or []
        purpose = "transactional" if own and own[0].purpose == "transactional" else "marketing"
        policy = consent.Policy(campaign.id, campaign.channel, purpose, config.require_opt_in, config.frequency_cap)
        candidates = [consent.Candidate(int(r.recipient.id or 0), r.recipient.customer_id, r.recipient.address)
                      for r in rows]
        refused = await consent.refusals(session, policy, candidates, now)
        live = [r for r in rows if r.recipient.id not in refused]
        problems = _render_all(live, sources, names, campaign, config, settings,
                               await _cases(session, [r.recipient.customer_id for r in live]))
        for reason in sorted(set(refused.values())):
            await _mark(session, [rid for rid, why in refused.items() if why == reason], "skipped", reason)
        variants = {r.recipient.id: r.recipient.variant for r in live}
        for rid, why in problems.items():
            await _mark(session, [rid], "failed", why)
            session.add(CampaignEvent(campaign_id=campaign.id, recipient_id=rid, variant=variants.get(rid),
                                      kind="failed", detail=why))
        ready = [r for r in live if r.recipient.id not in problems]
        out.skipped, out.failed = len(refused), len(problems)
        if not ready:
            return out
        conversations = await _messages(session, ready, campaign, config, settings)
        for row in ready:
            out.items.append(Item(int(row.recipient.id or 0), row.recipient.attempts,
                                  _outbound(row, campaign, config, settings, conversations[row.recipient.customer_id],
                                            purpose)))
    return out

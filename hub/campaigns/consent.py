"""Who may receive a campaign message right now: consent, suppression and the frequency cap.

Checked at send time, in one query per concern for a whole chunk, so an unsubscribe or a STOP
recorded a second ago is honoured by every running campaign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.campaigns.config import FrequencyCap
from hub.core.delivery import MARKETING_ONLY, UNSUBSCRIBED, suppress
from hub.store.models import AuditEvent, CampaignEvent, CampaignRecipient, Consent, Suppression, TimelineEntry
from hub.store.types import utcnow


@dataclass(frozen=True, slots=True)
class Candidate:
    """A claimed row as the checks see it."""

    recipient_id: int
    customer_id: int
    address: str


async def latest_consent(session: AsyncSession, customer_ids: Sequence[int], channel: str,
                         purpose: str) -> dict[int, bool]:
    """The consent in force per customer (the latest ledger row); absent when never recorded."""
    rows = await session.execute(
        select(col(Consent.customer_id), col(Consent.granted))
        .where(col(Consent.customer_id).in_(customer_ids), col(Consent.channel) == channel,
               col(Consent.purpose) == purpose)
        .order_by(col(Consent.at), col(Consent.id))
    )
    return {int(customer_id): bool(granted) for customer_id, granted in rows}


async def suppressed(session: AsyncSession, channel: str, addresses: Sequence[str],
                     purpose: str = "marketing") -> set[str]:
    """Addresses suppressed on this channel for this purpose (an unsubscribe stops marketing only)."""
    query = select(col(Suppression.address)).where(col(Suppression.channel) == channel,
                                                   col(Suppression.address).in_(addresses))
    if purpose != "marketing":
        query = query.where(col(Suppression.reason).not_in(MARKETING_ONLY))
    rows = await session.execute(query)
    return {str(a) for a in rows.scalars()}


async def recent_counts(session: AsyncSession, customer_ids: Sequence[int], cap: FrequencyCap, *,
                        exclude_campaign: int, now: datetime) -> dict[int, int]:
    """Campaign messages each customer got within the cap's period, from other campaigns."""
    since = now - timedelta(days=cap.days)
    rows = await session.execute(
        select(col(CampaignRecipient.customer_id), func.count())
        .where(col(CampaignRecipient.customer_id).in_(customer_ids), col(CampaignRecipient.status) == "sent",
               col(CampaignRecipient.sent_at) >= since, col(CampaignRecipient.campaign_id) != exclude_campaign)
        .group_by(col(CampaignRecipient.customer_id))
    )
    return {int(customer_id): int(n) for customer_id, n in rows}


@dataclass(frozen=True, slots=True)
class Policy:
    """What one campaign requires of its recipients."""

    campaign_id: int
    channel: str
    purpose: str = "marketing"
    require_opt_in: bool = False
    cap: FrequencyCap | None = None


async def refusals(session: AsyncSession, policy: Policy, rows: Sequence[Candidate],
                   now: datetime | None = None) -> dict[int, str]:
    """recipient id -> why it may not be sent now; rows not named may be sent."""
    now = now or utcnow()
    customer_ids = [r.customer_id for r in rows]
    consent = await latest_consent(session, customer_ids, policy.channel, policy.purpose)
    blocked = await suppressed(session, policy.channel, [r.address for r in rows], policy.purpose)
    counts = (await recent_counts(session, customer_ids, policy.cap, exclude_campaign=policy.campaign_id, now=now)
              if policy.cap else {})
    why: dict[int, str] = {}
    for row in rows:
        granted = consent.get(row.customer_id)
        if row.address in blocked:
            why[row.recipient_id] = "suppressed"
        elif granted is False or (granted is None and policy.require_opt_in):
            why[row.recipient_id] = f"no {policy.purpose} consent on {policy.channel}"
        elif policy.cap and counts.get(row.customer_id, 0) >= policy.cap.max_messages:
            why[row.recipient_id] = "frequency cap"
    return why


def _record_change(session: AsyncSession, recipient: CampaignRecipient, *, granted: bool, source: str,
                   detail: str | None, summary: str, now: datetime) -> None:
    """The consent ledger row of a marketing consent change, audited and put on the customer's timeline."""
    session.add(Consent(customer_id=recipient.customer_id, channel=recipient.channel, purpose="marketing",
                        granted=granted, source=source, detail=detail, at=now))
    facts = {"channel": recipient.channel, "purpose": "marketing", "granted": granted, "source": source,
             "campaign_id": recipient.campaign_id, "recipient_id": recipient.id}
    session.add(AuditEvent(actor=f"customer:{recipient.customer_id}",
                           action="consent.granted" if granted else "consent.withdrawn", entity="customer",
                           entity_id=recipient.customer_id, data={**facts, "detail": detail}, at=now))
    session.add(TimelineEntry(customer_id=recipient.customer_id, kind="consent", channel=recipient.channel,
                              summary=summary, data=facts, occurred_at=now))


async def unsubscribe(session: AsyncSession, recipient: CampaignRecipient, *, source: str,
                      detail: str | None = None) -> bool:
    """Withdraw marketing consent on the recipient's channel and suppress the address for marketing.

    Audited and put on the customer's timeline; False (and nothing written) when already withdrawn.
    """
    current = await latest_consent(session, [recipient.customer_id], recipient.channel, "marketing")
    if current.get(recipient.customer_id) is False:
        return False
    now = utcnow()
    assert recipient.id is not None
    _record_change(session, recipient, granted=False, source=source, detail=detail, now=now,
                   summary=f"Unsubscribed from {recipient.channel} marketing ({source})")
    session.add(CampaignEvent(campaign_id=recipient.campaign_id, recipient_id=recipient.id, variant=recipient.variant,
                              kind="unsubscribed", detail=source, at=now))
    await suppress(session, recipient.channel, recipient.address, reason=UNSUBSCRIBED, detail=source)
    await session.flush()
    return True


async def resubscribe(session: AsyncSession, recipient: CampaignRecipient, *, source: str,
                      detail: str | None = None) -> bool:
    """Grant marketing consent again after an unsubscribe and lift that unsubscribe's suppression.

    Suppressions for other reasons (hard bounces, complaints) stay. False when not withdrawn.
    """
    current = await latest_consent(session, [recipient.customer_id], recipient.channel, "marketing")
    if current.get(recipient.customer_id) is not False:
        return False
    _record_change(session, recipient, granted=True, source=source, detail=detail, now=utcnow(),
                   summary=f"Subscribed again to {recipient.channel} marketing ({source})")
    await session.execute(delete(Suppression).where(
        col(Suppression.channel) == recipient.channel, col(Suppression.address) == recipient.address,
        col(Suppression.reason) == UNSUBSCRIBED))
    await session.flush()
    return True


async def record_bounce(session: AsyncSession, recipient: CampaignRecipient, detail: str) -> None:
    """A hard bounce: suppress the address for every future campaign and count it."""
    await suppress(session, recipient.channel, recipient.address, reason="hard_bounce", detail=detail)
    assert recipient.id is not None
    session.add(CampaignEvent(campaign_id=recipient.campaign_id, recipient_id=recipient.id, variant=recipient.variant,
                              kind="bounced", detail=detail))

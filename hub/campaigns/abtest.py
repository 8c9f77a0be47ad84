"""A/B winner: after the wait, the variant with the best open, click or reply rate takes the rest."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.campaigns.config import load
from hub.store.models import AuditEvent, Campaign, CampaignEvent, CampaignRecipient

_METRIC_EVENT = {"open": "opened", "click": "clicked", "reply": "replied"}


def choose(sent: Mapping[str, int], hits: Mapping[str, int]) -> str | None:
    """The variant with the highest rate (ties: the first name); None before anything was sent."""
    rates = {v: hits.get(v, 0) / n for v, n in sent.items() if n}
    if not rates:
        return None
    best = max(rates.values())
    return sorted(v for v, rate in rates.items() if rate == best)[0]


async def _counts(session: AsyncSession, campaign_id: int, kind: str) -> tuple[dict[str, int], dict[str, int]]:
    sent_rows = await session.execute(
        select(col(CampaignRecipient.variant), func.count()).where(
            col(CampaignRecipient.campaign_id) == campaign_id, col(CampaignRecipient.status) == "sent",
            col(CampaignRecipient.variant).is_not(None)).group_by(col(CampaignRecipient.variant)))
    hit_rows = await session.execute(
        select(col(CampaignEvent.variant), func.count(func.distinct(col(CampaignEvent.recipient_id)))).where(
            col(CampaignEvent.campaign_id) == campaign_id, col(CampaignEvent.kind) == kind,
            col(CampaignEvent.variant).is_not(None)).group_by(col(CampaignEvent.variant)))
    return ({str(v): int(n) for v, n in sent_rows}, {str(v): int(n) for v, n in hit_rows})


async def pick_winner(session: AsyncSession, campaign: Campaign, now: datetime) -> str | None:
    """Release held rows to the winning variant once the wait is over; returns the winner."""
    config = load(campaign.settings)
    ab = config.ab
    if ab is None or config.state.get("winner") or campaign.started_at is None:
        return None
    if now < campaign.started_at + timedelta(minutes=ab.wait_minutes):
        return None
    assert campaign.id is not None
    sent, hits = await _counts(session, campaign.id, _METRIC_EVENT[ab.metric])
    winner = choose(sent, hits) or sorted(ab.variants)[0]
    state = {**config.state, "winner": winner, "winner_at": now.isoformat(), "rates": {
        v: round(hits.get(v, 0) / n, 4) for v, n in sent.items() if n}}
    campaign.settings = {**campaign.settings, "state": state}
    await session.execute(
        update(CampaignRecipient).where(col(CampaignRecipient.campaign_id) == campaign.id,
                                        col(CampaignRecipient.status) == "held")
        .values(status="queued", variant=winner, enqueued_at=None).execution_options(synchronize_session=False))
    session.add(AuditEvent(actor="system", action="campaign.ab_winner", entity="campaign", entity_id=campaign.id,
                           data=state))
    return winner

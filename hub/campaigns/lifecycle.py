"""Campaign states and the transitions between them, done as conditional updates and audited.

draft -> scheduled -> running <-> paused -> completed | cancelled. A conditional UPDATE makes
every transition safe against a second actor (another worker, the scheduler, an agent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.store.models import AuditEvent, Campaign, CampaignRecipient
from hub.store.types import utcnow

DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, CANCELLED = (
    "draft", "scheduled", "running", "paused", "completed", "cancelled")
STATUSES = (DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, CANCELLED)

# action -> (allowed from, to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "schedule": (frozenset({DRAFT, SCHEDULED}), SCHEDULED),
    "unschedule": (frozenset({SCHEDULED}), DRAFT),
    "start": (frozenset({SCHEDULED}), RUNNING),
    "pause": (frozenset({SCHEDULED, RUNNING}), PAUSED),
    "resume": (frozenset({PAUSED}), RUNNING),
    "complete": (frozenset({RUNNING}), COMPLETED),
    "cancel": (frozenset({DRAFT, SCHEDULED, RUNNING, PAUSED}), CANCELLED),
}


class TransitionError(ValueError):
    """A transition not allowed from the campaign's current state."""

    def __init__(self, action: str, current: str | None) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[action][0])) if action in TRANSITIONS else "nothing"
        super().__init__(f"cannot {action} a campaign that is {current or 'missing'} (allowed from: {allowed})")
        self.action, self.current = action, current


async def transition(session: AsyncSession, campaign_id: int, action: str, *, actor: str,
                     now: datetime | None = None, reason: str | None = None, **values: Any) -> Campaign:
    """Move the campaign, or raise TransitionError naming its current state."""
    allowed, target = TRANSITIONS[action]
    now = now or utcnow()
    if target == RUNNING and action == "start":
        values.setdefault("started_at", now)
    if target in {COMPLETED, CANCELLED}:
        values.setdefault("finished_at", now)
    done = await session.execute(
        update(Campaign).where(col(Campaign.id) == campaign_id, col(Campaign.status).in_(allowed))
        .values(status=target, **values).execution_options(synchronize_session=False)
    )
    campaign = await session.get(Campaign, campaign_id, populate_existing=True)
    if done.rowcount != 1 or campaign is None:  # type: ignore[attr-defined]
        raise TransitionError(action, campaign.status if campaign else None)
    if target == CANCELLED:
        # Rows not yet claimed are dropped at once; a row being sent finishes and is recorded.
        await session.execute(
            update(CampaignRecipient)
            .where(col(CampaignRecipient.campaign_id) == campaign_id,
                   col(CampaignRecipient.status).in_(("queued", "held")))
            .values(status="cancelled").execution_options(synchronize_session=False)
        )
    session.add(AuditEvent(actor=actor, action=f"campaign.{action}", entity="campaign", entity_id=campaign_id,
                           data={"to": target, **({"reason": reason} if reason else {})}, at=now))
    return campaign

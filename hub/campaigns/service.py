"""What the API and CLI do with campaigns, templates and segments (validated, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.campaigns import lifecycle, segments, templates
from hub.campaigns.config import CampaignConfig, load
from hub.campaigns.templates import TemplateSource
from hub.campaigns.timing import parse_clock
from hub.routing.conditions import ConditionError
from hub.store.models import AuditEvent, Campaign, CampaignRecipient, Segment, Template
from hub.store.types import utcnow

CHANNELS = ("email", "sms", "whatsapp")


class CampaignError(ValueError):
    """A request that cannot be honoured; `field` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


async def save_template(session: AsyncSession, source: TemplateSource) -> Template:
    """Validate (syntax, sandbox) then insert or replace the variant for (name, channel, language)."""
    try:
        templates.validate(source)
    except templates.TemplateProblem as exc:
        raise CampaignError(exc.part, str(exc)) from None
    found = (await session.execute(select(Template).where(
        col(Template.name) == source.name, col(Template.channel) == source.channel,
        col(Template.language) == source.language))).scalar_one_or_none()
    row = found or Template(name=source.name, channel=source.channel, language=source.language)
    row.purpose, row.subject = source.purpose, source.subject
    row.body_text, row.body_html = source.body_text, source.body_html
    session.add(row)
    await session.flush()
    return row


async def save_segment(session: AsyncSession, name: str, condition: dict[str, Any]) -> Segment:
    """Validate the condition against the segment fields, then insert or replace it by name."""
    try:
        segments.where(condition)
    except ConditionError as exc:
        raise CampaignError("condition", str(exc)) from None
    found = (await session.execute(select(Segment).where(col(Segment.name) == name))).scalar_one_or_none()
    row = found or Segment(name=name)
    row.condition = condition
    session.add(row)
    await session.flush()
    return row


async def create(session: AsyncSession, *, name: str, channel: str, template_name: str, segment_id: int | None,
                 config: CampaignConfig, local_send_time: str | None = None, actor: str = "api",
                 agent_id: int | None = None) -> Campaign:
    """A draft campaign; its template and segment must exist on that channel."""
    if channel not in CHANNELS:
        raise CampaignError("channel", f"channel must be one of {', '.join(CHANNELS)}")
    if local_send_time is not None:
        parse_clock(local_send_time)
    names = {template_name, *(config.ab.variants.values() if config.ab else ())}
    known = set((await session.execute(select(col(Template.name)).where(
        col(Template.name).in_(names), col(Template.channel) == channel))).scalars())
    if missing := sorted(names - known):
        raise CampaignError("template_name", f"no {channel} template named {', '.join(missing)}")
    if segment_id is not None and await session.get(Segment, segment_id) is None:
        raise CampaignError("segment_id", f"segment {segment_id} does not exist")
    campaign = Campaign(name=name, channel=channel, template_name=template_name, segment_id=segment_id,
                        local_send_time=local_send_time, settings=config.model_dump(exclude_none=True),
                        created_by_agent_id=agent_id)
    session.add(campaign)
    await session.flush()
    session.add(AuditEvent(actor=actor, action="campaign.created", entity="campaign", entity_id=campaign.id,
                           data={"name": name, "channel": channel}))
    return campaign


async def schedule(session: AsyncSession, campaign_id: int, at: datetime | None, *, actor: str) -> Campaign:
    """Send at `at`, or now (the next scheduler tick) when None."""
    return await lifecycle.transition(session, campaign_id, "schedule", actor=actor, scheduled_at=at or utcnow())


async def resume(session: AsyncSession, campaign_id: int, *, actor: str) -> Campaign:
    """Running again; queued rows are re-enqueued by the next tick (their jobs may have given up)."""
    campaign = await lifecycle.transition(session, campaign_id, "resume", actor=actor)
    await session.execute(update(CampaignRecipient).where(col(CampaignRecipient.campaign_id) == campaign_id,
                                                          col(CampaignRecipient.status) == "queued")
                          .values(enqueued_at=None).execution_options(synchronize_session=False))
    if campaign.started_at is None:
        campaign.started_at = utcnow()
    return campaign


def config_of(campaign: Campaign) -> CampaignConfig:
    return load(campaign.settings)

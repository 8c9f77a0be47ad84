"""`hub campaign ...`: create, schedule, pause, resume, cancel, stats, tick and send-test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from hub import runtime as hub_runtime
from hub.campaigns import lifecycle, scheduler, service, stats
from hub.campaigns.config import CampaignConfig
from hub.campaigns.jobs import context
from hub.campaigns.render import load_sources
from hub.campaigns.templates import Rendered, customer_context, pick_variant, render
from hub.core.delivery import TEST_MESSAGE_ID
from hub.core.envelopes import Address, AddressKind, Channel, Outbound
from hub.core.identity import InvalidAddress, normalise_email, normalise_phone
from hub.settings import Settings, SettingsError, load_settings
from hub.store.models import Campaign, Customer

T = TypeVar("T")


def _run(work: Callable[[hub_runtime.Runtime], Awaitable[T]]) -> T:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> T:
        async with hub_runtime.running(settings, use_redis=settings.redis_url is not None) as rt:
            return await work(rt)

    return asyncio.run(go())


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group()
def campaign() -> None:
    """Marketing campaigns."""


@campaign.command("create")
@click.option("--name", required=True)
@click.option("--channel", type=click.Choice(service.CHANNELS), default="email", show_default=True)
@click.option("--template", "template_name", required=True, help="Template name (all languages).")
@click.option("--segment-id", type=int, default=None)
@click.option("--local-time", default=None, help="Deliver at this HH:MM in each customer's timezone.")
@click.option("--settings", "settings_json", default="{}", help="Campaign settings as JSON (ab, rate, ...).")
def create(name: str, channel: str, template_name: str, segment_id: int | None, local_time: str | None,
           settings_json: str) -> None:
    """Create a draft campaign and print its id."""
    try:
        config = CampaignConfig.model_validate_json(settings_json)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--settings") from None

    async def work(rt: hub_runtime.Runtime) -> int | None:
        async with rt.factory() as session, session.begin():
            made = await service.create(session, name=name, channel=channel, template_name=template_name,
                                        segment_id=segment_id, config=config, local_send_time=local_time, actor="cli")
            return made.id

    try:
        click.echo(_run(work))
    except service.CampaignError as exc:
        raise click.ClickException(f"{exc.field}: {exc}") from None


def _transition(campaign_id: int, action: str, at: datetime | None = None) -> None:
    async def work(rt: hub_runtime.Runtime) -> str:
        async with rt.factory() as session, session.begin():
            if action == "schedule":
                row = await service.schedule(session, campaign_id, at, actor="cli")
            elif action == "resume":
                row = await service.resume(session, campaign_id, actor="cli")
            else:
                row = await lifecycle.transition(session, campaign_id, action, actor="cli")
            return row.status

    try:
        click.echo(f"campaign {campaign_id}: {_run(work)}")
    except lifecycle.TransitionError as exc:
        raise click.ClickException(str(exc)) from None


@campaign.command("schedule")
@click.argument("campaign_id", type=int)
@click.option("--at", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]), default=None,
              help="When to start (ISO with offset); default now.")
def schedule(campaign_id: int, at: datetime | None) -> None:
    """Send now, or at a time."""
    _transition(campaign_id, "schedule", at)


@campaign.command("pause")
@click.argument("campaign_id", type=int)
def pause(campaign_id: int) -> None:
    """Pause: workers stop before their next chunk."""
    _transition(campaign_id, "pause")


@campaign.command("resume")
@click.argument("campaign_id", type=int)
def resume(campaign_id: int) -> None:
    """Resume a paused campaign."""
    _transition(campaign_id, "resume")


@campaign.command("cancel")
@click.argument("campaign_id", type=int)
def cancel(campaign_id: int) -> None:
    """Cancel: rows not yet claimed are dropped."""
    _transition(campaign_id, "cancel")


@campaign.command("stats")
@click.argument("campaign_id", type=int)
@click.option("--bucket", type=click.Choice(["minute", "hour", "day"]), default="hour", show_default=True)
def show_stats(campaign_id: int, bucket: str) -> None:
    """Totals and the time series as JSON."""
    async def work(rt: hub_runtime.Runtime) -> dict[str, Any]:
        async with rt.factory() as session:
            return {"totals": await stats.totals(session, campaign_id),
                    "series": await stats.series(session, campaign_id, bucket)}  # type: ignore[arg-type]

    _echo(_run(work))


@campaign.command("tick")
def tick() -> None:
    """Run one scheduler pass now (the workers' cron does this every few seconds)."""
    async def work(rt: hub_runtime.Runtime) -> dict[str, Any]:
        return await scheduler.tick(context(rt))

    _echo(_run(work))


def _test_recipient(channel: str, to: str, region: str) -> str:
    """The test address in the form the channel's sender needs (E.164 for SMS and WhatsApp)."""
    try:
        return normalise_email(to) if channel == "email" else normalise_phone(to, region)
    except InvalidAddress as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None


def _test_outbound(row: Campaign, out: Rendered, to: str, settings: Settings) -> Outbound:
    """The test message: email is marked [TEST] in its subject; a text goes out as customers get it."""
    assert row.id is not None
    if row.channel == "email":
        return Outbound(
            channel=Channel.EMAIL, message_id=TEST_MESSAGE_ID, sender=Address(AddressKind.EMAIL, settings.smtp_from),
            recipient=Address(AddressKind.EMAIL, to), body_text=out.body_text,
            subject=f"[TEST] {out.subject or ''}".strip(), body_html=out.body_html,
            headers=(("X-Hub-Campaign-Test", str(row.id)),))
    return Outbound(channel=Channel(row.channel), message_id=TEST_MESSAGE_ID,
                    sender=Address(AddressKind.PHONE, settings.twilio_from or ""),
                    recipient=Address(AddressKind.PHONE, to), body_text=out.body_text)


async def _render_test(rt: hub_runtime.Runtime, campaign_id: int, customer_id: int,
                       to: str) -> tuple[Campaign, Rendered]:
    async with rt.factory() as session:
        row, customer = await session.get(Campaign, campaign_id), await session.get(Customer, customer_id)
        if row is None or customer is None:
            raise click.ClickException("no such campaign or customer")
        sources = (await load_sources(session, [row.template_name], row.channel)).get(row.template_name, [])
    source = pick_variant(sources, customer.language)
    if source is None:
        raise click.ClickException(f"no {row.channel} template {row.template_name!r}")
    kind = "email" if row.channel == "email" else "phone"
    return row, render(source, customer_context(customer.model_dump(), {kind: to}, None,
                                                {"id": row.id, "name": row.name},
                                                {"unsubscribe_url": f"{rt.settings.public_url}/u/test"}))


@campaign.command("send-test")
@click.argument("campaign_id", type=int)
@click.option("--customer-id", type=int, required=True, help="Personalise as this customer.")
@click.option("--to", "to", required=True, help="Send to this address or number instead of the customer's.")
def send_test(campaign_id: int, customer_id: int, to: str) -> None:
    """Render the campaign for one customer and send it to a test address or number (nothing is recorded)."""
    async def work(rt: hub_runtime.Runtime) -> str:
        row, out = await _render_test(rt, campaign_id, customer_id, to)
        sender = rt.jobs.senders.get(row.channel)
        if sender is None:
            raise click.ClickException(f"no sender configured for {row.channel}")
        address = _test_recipient(row.channel, to, rt.settings.default_region)
        result = await sender.send(_test_outbound(row, out, address, rt.settings))
        if not result.ok:
            return f"failed: {result.detail}"
        return f"sent ({out.segments} SMS segment{'s' if out.segments > 1 else ''})" if out.segments else "sent"

    click.echo(_run(work))

"""Fast seeding for campaign tests and the bench: customers with one email and one phone each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, text
from sqlmodel import col

from hub.campaigns import service
from hub.campaigns.config import CampaignConfig
from hub.campaigns.templates import TemplateSource
from hub.store.engine import SessionFactory
from hub.store.models import Customer, Identity

ZONES = ("Europe/Rome", "America/New_York", "Asia/Tokyo")


def address(n: int) -> str:
    return f"guest{n}@example.com"


def phone(n: int) -> str:
    """A valid Italian mobile number in E.164 (the SMS webhook refuses numbers that cannot exist)."""
    return f"+39348{n:07d}"


async def customers(factory: SessionFactory, count: int, *, tags: list[str] | None = None, start: int = 0,
                    chunk: int = 2000, languages: tuple[str, ...] = ("en", "it")) -> list[int]:
    """Insert `count` customers (names `Guest <n>`) with identities; returns their ids in order."""
    ids: list[int] = []
    for base in range(start, start + count, chunk):
        numbers = range(base, min(base + chunk, start + count))
        rows = [{"display_name": f"Guest {n}", "language": languages[n % len(languages)],
                 "timezone": ZONES[n % len(ZONES)], "tags": tags or ["vip"], "attributes": {"room": str(100 + n % 50)},
                 "lifecycle_stage": "key"} for n in numbers]
        async with factory() as session, session.begin():
            made = list((await session.execute(insert(Customer).returning(col(Customer.id)), rows)).scalars())
            made.sort()
            idents: list[dict[str, Any]] = []
            for n, cid in zip(numbers, made, strict=True):
                idents.append({"customer_id": cid, "kind": "email", "value": address(n)})
                idents.append({"customer_id": cid, "kind": "phone", "value": phone(n)})
            await session.execute(insert(Identity), idents)
            ids.extend(int(i) for i in made)
    await analyse(factory)
    return ids


async def analyse(factory: SessionFactory) -> None:
    """Refresh PostgreSQL's planner statistics after a bulk load, as autovacuum would on a server.

    The test cluster runs without autovacuum: never-analysed tables look empty to the planner,
    which then walks a segment with a nested scan of every identity per customer.
    """
    async with factory() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("ANALYZE customer, identity"))


async def campaign(factory: SessionFactory, *, channel: str = "email", name: str = "Spring offer",
                   condition: dict[str, Any] | None = None, config: CampaignConfig | None = None,
                   local_send_time: str | None = None, template: str = "spring") -> int:
    """A template (en + it), a segment and a draft campaign over them; returns the campaign id."""
    async with factory() as session, session.begin():
        for lang, hello in (("en", "Hello"), ("it", "Ciao")):
            await service.save_template(session, TemplateSource(
                name=template, channel=channel, language=lang,
                subject="{{ customer.first_name }}, spring is here" if channel == "email" else None,
                body_text=f"{hello} {{{{ customer.name }}}} (room {{{{ customer.attributes.room | default('?') }}}})."
                          " Unsubscribe: {{ unsubscribe_url }}",
                body_html=(f"<p>{hello} <b>{{{{ customer.name }}}}</b> <a href=\"https://hotel.example/offer\">offer</a>"
                           "</p>") if channel == "email" else None))
        if (existing := (await session.execute(select(col(Customer.id)).limit(1))).scalar()) is None:
            raise AssertionError("seed customers first")
        segment = await service.save_segment(session, f"seg-{name}", condition or {
            "field": "customer.tags", "op": "contains", "value": "vip"})
        made = await service.create(session, name=name, channel=channel, template_name=template,
                                    segment_id=segment.id, config=config or CampaignConfig(),
                                    local_send_time=local_send_time, actor="test")
        assert made.id is not None and existing
        return made.id

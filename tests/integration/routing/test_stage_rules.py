"""A lifecycle stage change is an event rules act on; bulk publishers skip handlers that decline it."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlmodel import col

from hub.analytics.stages import STAGE_CHANGED, set_stage
from hub.core.events import Event, accepts, handles
from hub.routing.wiring import rules_changed
from hub.runtime import Runtime
from hub.store.models import Customer, OutboxItem, Rule

KEY_RULE = {
    "name": "tell the CRM about new key guests", "event": STAGE_CHANGED,
    "condition": {"field": "event.data.to_stage", "op": "equals", "value": "key"},
    "actions": [{"type": "webhook", "url": "https://crm.hotel.test/hooks/key"}],
}


async def test_a_rule_on_customer_stage_changed_fires_for_the_stage_it_names(runtime: Runtime) -> None:
    async with runtime.factory() as session, session.begin():
        session.add(Rule(**KEY_RULE))
        guest, other = Customer(display_name="Giulia"), Customer(display_name="Marco")
        session.add_all([guest, other])
        await session.flush()
        assert guest.id is not None and other.id is not None
        ids = guest.id, other.id
    rules_changed(runtime)
    async with runtime.factory() as session, session.begin():
        await set_stage(session, ids[0], "key", cause="agent", actor="test", handlers=tuple(runtime.handlers))
        await set_stage(session, ids[1], "cultivable", cause="agent", actor="test", handlers=tuple(runtime.handlers))
    async with runtime.factory() as session:
        hooks = (await session.execute(select(OutboxItem).where(col(OutboxItem.kind) == "webhook"))).scalars().all()
    assert len(hooks) == 1
    body = json.loads(hooks[0].payload["body"])
    assert (body["event"], body["customer_id"], body["data"]["to_stage"]) == (STAGE_CHANGED, ids[0], "key")


def test_handlers_declaring_their_types_are_skipped_for_others_and_plain_ones_take_all() -> None:
    @handles("message.received")
    async def picky(_session: object, _event: Event) -> None:
        return None

    async def plain(_session: object, _event: Event) -> None:
        return None

    assert accepts(picky, "message.received") and not accepts(picky, STAGE_CHANGED)  # type: ignore[arg-type]
    assert accepts(plain, STAGE_CHANGED)  # type: ignore[arg-type]

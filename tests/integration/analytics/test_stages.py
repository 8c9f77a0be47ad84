"""Stage history: set_stage records and announces changes; the stage on any past date is answered."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import select

from hub.analytics import stages
from hub.core.events import Event
from hub.runtime import Runtime
from hub.store.models import AuditEvent, Customer, DomainEvent, StageChange
from tests.integration.analytics.history import at


async def _customers(runtime: Runtime, count: int) -> list[int]:
    async with runtime.factory() as session, session.begin():
        made = [Customer(display_name=f"c{n}", created_at=at("2025-01-01T00:00")) for n in range(count)]
        session.add_all(made)
        await session.flush()
        ids = [c.id for c in made if c.id is not None]
        session.add_all([StageChange(customer_id=cid, to_stage="prospect", cause="created",
                                     changed_at=at("2025-01-01T00:00")) for cid in ids])
    return ids


async def test_stage_on_date_follows_the_history(runtime: Runtime) -> None:
    seen: list[Event] = []

    async def handler(session: object, event: Event) -> None:
        seen.append(event)

    a, b = await _customers(runtime, 2)
    async with runtime.factory() as session, session.begin():
        await stages.set_stage(session, a, "key", cause="agent", actor="marco", at=at("2025-02-15T10:00"),
                               handlers=[handler])
        await stages.set_stage(session, a, "sub_zero", cause="rule", actor="rule:abuse", at=at("2025-03-01T00:00"))
        await stages.set_stage(session, b, "cultivable", cause="classifier", at=at("2025-02-20T00:00"))
        assert await stages.set_stage(session, b, "cultivable", cause="agent") is None
    async with runtime.factory() as session:
        on = stages.stage_on
        assert await on(session, a, at("2024-12-31T23:59")) is None
        assert await on(session, a, at("2025-01-01T00:00")) == "prospect"
        assert await on(session, a, at("2025-02-15T09:59")) == "prospect"
        assert await on(session, a, stages.end_of_day(date(2025, 2, 15))) == "key"
        assert await on(session, a, at("2025-03-01T00:00")) == "sub_zero"
        history = await stages.history(session, a)
        dist = await stages.distribution_on(session, [at("2024-12-01T00:00"), at("2025-02-16T00:00"),
                                                      at("2025-03-02T00:00")])
        audit = (await session.execute(select(AuditEvent).where(AuditEvent.action == "customer.stage_changed"))).all()
        events = (await session.execute(select(DomainEvent).where(DomainEvent.type == stages.STAGE_CHANGED))).all()
        customer = await session.get(Customer, a)
    assert [(h.from_stage, h.to_stage, h.cause, h.actor) for h in history] == [
        (None, "prospect", "created", None), ("prospect", "key", "agent", "marco"),
        ("key", "sub_zero", "rule", "rule:abuse")]
    assert customer is not None and customer.lifecycle_stage == "sub_zero"
    assert dist[at("2024-12-01T00:00")] == dict.fromkeys(("prospect", "cultivable", "key", "advocate", "sub_zero"), 0)
    assert dist[at("2025-02-16T00:00")] == {"prospect": 1, "cultivable": 0, "key": 1, "advocate": 0, "sub_zero": 0}
    assert dist[at("2025-03-02T00:00")] == {"prospect": 0, "cultivable": 1, "key": 0, "advocate": 0, "sub_zero": 1}
    assert len(audit) == 3 and len(events) == 3
    assert [(e.type, e.customer_id, e.data["to_stage"]) for e in seen] == [(stages.STAGE_CHANGED, a, "key")]


async def test_unknown_stage_or_cause_is_refused(runtime: Runtime) -> None:
    (a,) = await _customers(runtime, 1)
    async with runtime.factory() as session, session.begin():
        with pytest.raises(stages.StageError, match="unknown stage"):
            await stages.set_stage(session, a, "vip", cause="agent")
        with pytest.raises(stages.StageError, match="unknown cause"):
            await stages.set_stage(session, a, "key", cause="magic")
        with pytest.raises(stages.StageError, match="no customer"):
            await stages.set_stage(session, 999_999, "key", cause="agent")

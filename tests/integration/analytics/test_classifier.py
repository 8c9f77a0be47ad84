"""The classifier on a fixture with known quintiles: the right moves, recorded once, announced as events."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func
from sqlmodel import select

from hub.analytics import classifier, orders
from hub.analytics.stages import STAGE_CHANGED
from hub.core.events import Event
from hub.routing.conditions import ConditionError
from hub.runtime import Runtime
from hub.store.models import Case, Customer, DomainEvent, StageChange, Survey


async def _fixture(runtime: Runtime) -> dict[int, int]:
    """Customers 1..10 with n stays of 100*n each (quintile = ceil(n/2)); 11 abusive, 12 locked, 13 referred by 5."""
    lines = ["external_id,date,amount,email"]
    for n in range(1, 11):
        lines += [f"c{n}-{k},2025-0{1 + k % 9}-10,{100 * n},c{n}@x.test" for k in range(n)]
    async with runtime.factory() as session, session.begin():
        report = await orders.import_text(session, "rfm.csv", "\n".join(lines) + "\n")
        assert report.errors == [] and report.inserted == 55
        ids = {n: cid for n in range(1, 11) for cid in [await _id(session, f"c{n}@x.test")]}
        extra = [Customer(display_name="troll", tags=["abusive"]),
                 Customer(display_name="pinned", tags=["stage_locked"], lifecycle_stage="key"),
                 Customer(display_name="friend", attributes={"referred_by": str(ids[5])})]
        session.add_all(extra)
        await session.flush()
        ids |= {11 + k: c.id for k, c in enumerate(extra) if c.id is not None}
        case = Case(customer_id=ids[5], state="closed_success")
        session.add(case)
        await session.flush()
        assert case.id is not None
        session.add(Survey(case_id=case.id, customer_id=ids[5], channel="sms", questions=["q"], answers=[5], score=5.0,
                           status="answered"))
    return ids


async def _id(session: object, email: str) -> int:
    from hub.store.models import Identity

    found = await session.execute(select(Identity.customer_id).where(Identity.value == email))  # type: ignore[attr-defined]
    return int(found.scalar_one())


async def test_classify_moves_exactly_the_expected_customers(runtime: Runtime) -> None:
    ids = await _fixture(runtime)
    seen: list[Event] = []

    async def handler(session: object, event: Event) -> None:
        seen.append(event)

    async with runtime.factory() as session, session.begin():
        dry = await classifier.classify(session, dry_run=True, today=date(2025, 12, 31))
    async with runtime.factory() as session:
        untouched = (await session.execute(select(func.count()).select_from(StageChange)
                                           .where(StageChange.cause == "classifier"))).scalar_one()
    assert untouched == 0 and dry.dry_run
    async with runtime.factory() as session, session.begin():
        done = await classifier.classify(session, today=date(2025, 12, 31), handlers=[handler])
    expected = {("prospect", "cultivable"): 5, ("prospect", "advocate"): 1, ("prospect", "key"): 4,
                ("prospect", "sub_zero"): 1}
    assert dry.moves == done.moves == expected and done.changed == 11
    async with runtime.factory() as session:
        stage = {n: (await session.get(Customer, cid)).lifecycle_stage for n, cid in ids.items()}  # type: ignore[union-attr]
        history = (await session.execute(select(StageChange.customer_id, StageChange.from_stage, StageChange.to_stage)
                                         .where(StageChange.cause == "classifier"))).all()
    assert stage == {1: "cultivable", 2: "cultivable", 3: "cultivable", 4: "cultivable", 5: "advocate",
                     6: "cultivable", 7: "key", 8: "key", 9: "key", 10: "key", 11: "sub_zero", 12: "key",
                     13: "prospect"}
    assert sorted(h[0] for h in history) == sorted(ids[n] for n in range(1, 12))
    assert sorted(e.customer_id or 0 for e in seen) == sorted(ids[n] for n in range(1, 12))
    assert {e.type for e in seen} == {STAGE_CHANGED}
    # Each move is stored once for live streams, with the payload publish() would store.
    async with runtime.factory() as session:
        stored = (await session.execute(select(DomainEvent).where(DomainEvent.type == STAGE_CHANGED))).scalars().all()
    assert sorted((r.customer_id or 0, r.payload) for r in stored) == sorted(
        (e.customer_id or 0, {"message_id": None, **e.data}) for e in seen)
    assert set(seen[0].data) == {"from_stage", "to_stage", "cause", "actor", "at"}
    assert seen[0].data["cause"] == seen[0].data["actor"] == "classifier"
    async with runtime.factory() as session, session.begin():
        again = await classifier.classify(session, today=date(2025, 12, 31))
    assert again.changed == 0


async def test_rules_come_from_the_table_and_are_checked(runtime: Runtime) -> None:
    await _fixture(runtime)
    with pytest.raises(ConditionError) as bad:
        classifier.parse_rules([{"stage": "key", "condition": {"field": "rfm.nope", "op": "gte", "value": 1}},
                                {"stage": "gold", "condition": {}}])
    assert [path for path, _ in bad.value.errors] == ["$[0].condition.field", "$[1].stage"]
    rules = classifier.parse_rules([
        {"stage": "key", "condition": {"field": "rfm.monetary", "op": "gte", "value": 900}}])
    async with runtime.factory() as session, session.begin():
        await classifier.save_rules(session, rules)
    async with runtime.factory() as session, session.begin():
        result = await classifier.classify(session, dry_run=True)
    # Customer n spends n stays * 100n: 3 (900) to 10 reach 900; no other rule, so the rest stay.
    assert result.moves == {("prospect", "key"): 8}
    # Applied without handlers: the stages and their history change, but no event is stored.
    async with runtime.factory() as session, session.begin():
        applied = await classifier.classify(session)
    async with runtime.factory() as session:
        keys = (await session.execute(select(func.count()).select_from(Customer)
                                      .where(Customer.lifecycle_stage == "key"))).scalar_one()
        history = (await session.execute(select(StageChange.from_stage, StageChange.to_stage, StageChange.actor)
                                         .where(StageChange.cause == "classifier"))).all()
        events = (await session.execute(select(func.count()).select_from(DomainEvent)
                                        .where(DomainEvent.type == STAGE_CHANGED))).scalar_one()
    assert applied.moves == result.moves and keys == 8 + 1  # and the customer pinned at key
    assert history == [("prospect", "key", "classifier")] * 8 and events == 0


async def test_referrals_count_only_plain_customer_ids(runtime: Runtime) -> None:
    ids = await _fixture(runtime)
    # Customer 13 already names customer 5; these spellings must not count for anyone.
    async with runtime.factory() as session, session.begin():
        session.add_all([Customer(display_name=f"odd {n}", attributes={"referred_by": value})
                         for n, value in enumerate([f"0{ids[6]}", f"{ids[7]}x", f" {ids[8]}", "abc", "0", ""])])
        session.add(Customer(display_name="second friend of 5", attributes={"referred_by": str(ids[5])}))
    rules = classifier.parse_rules([
        {"stage": "advocate", "condition": {"field": "referrals.count", "op": "gte", "value": 2}},
        {"stage": "key", "condition": {"field": "referrals.count", "op": "gte", "value": 1}}])
    async with runtime.factory() as session, session.begin():
        result = await classifier.classify(session, rules=rules, dry_run=True)
    assert result.moves == {("prospect", "advocate"): 1}
    assert [c for c, _, _ in result.sample] == [ids[5]]

"""`staytotals` follows `stay` through imports, merges, edits and deletes, on both databases."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import case, delete, func, insert, update
from sqlmodel import col, select

from hub.analytics import orders
from hub.core import customers
from hub.runtime import Runtime
from hub.store.models import Customer, Stay, StayTotals, table


async def _import(runtime: Runtime, rows: list[str]) -> None:
    async with runtime.factory() as session, session.begin():
        text = "\n".join(["external_id,date,amount,email", *rows]) + "\n"
        report = await orders.import_text(session, "stays.csv", text)
        assert report.errors == []


async def _totals(runtime: Runtime) -> dict[int, tuple[int, int, int, date]]:
    async with runtime.factory() as session:
        rows = (await session.execute(select(StayTotals))).scalars().all()
    return {r.customer_id: (r.visits, r.stays, r.spend_cents, r.last_date) for r in rows}


async def _recounted(runtime: Runtime) -> dict[int, tuple[int, int, int, date]]:
    """The same figures aggregated from every stay, the way the classifier used to read them."""
    stay = table(Stay).c
    query: Any = (select(stay.customer_id, func.count(), func.sum(case((stay.kind == "stay", 1), else_=0)),
                         func.sum(stay.amount_cents), func.max(stay.stay_date)).group_by(stay.customer_id))
    async with runtime.factory() as session:
        rows = (await session.execute(query)).all()
    return {int(c): (int(v), int(s), int(m), last) for c, v, s, m, last in rows}


async def _customer(runtime: Runtime, email: str) -> int:
    from hub.store.models import Identity

    async with runtime.factory() as session:
        return int((await session.execute(select(Identity.customer_id).where(Identity.value == email))).scalar_one())


async def test_imports_add_to_the_totals_and_a_second_import_changes_nothing(runtime: Runtime) -> None:
    await _import(runtime, ["a1,2025-01-10,100.50,ann@x.test", "a2,2025-03-02,20,ann@x.test",
                            "b1,2025-02-01,70,bo@x.test"])
    await _import(runtime, ["a1,2025-01-10,100.50,ann@x.test", "a3,2024-12-31,5,ann@x.test"])  # a1 is a duplicate
    ann, bo = await _customer(runtime, "ann@x.test"), await _customer(runtime, "bo@x.test")
    totals = await _totals(runtime)
    assert totals[ann] == (3, 3, 12550, date(2025, 3, 2)) and totals[bo] == (1, 1, 7000, date(2025, 2, 1))
    assert totals == await _recounted(runtime)


async def test_a_set_based_insert_of_many_stays_is_summed_per_customer(runtime: Runtime) -> None:
    await _import(runtime, ["a1,2025-01-10,10,ann@x.test"])
    ann = await _customer(runtime, "ann@x.test")
    rows = [{"customer_id": ann, "external_id": f"bulk{n}", "kind": "order" if n % 2 else "stay",
             "amount_cents": n, "stay_date": date(2025, 5, 1 + n)} for n in range(10)]
    async with runtime.factory() as session, session.begin():
        await session.execute(insert(table(Stay)), rows)  # one statement, many rows
    assert (await _totals(runtime))[ann] == (11, 6, 1000 + 45, date(2025, 5, 10))
    assert await _totals(runtime) == await _recounted(runtime)


async def test_a_merge_moves_the_totals_with_the_stays(runtime: Runtime) -> None:
    await _import(runtime, ["a1,2025-01-10,10,ann@x.test", "b1,2025-06-01,30,bo@x.test", "b2,2025-02-01,5,bo@x.test"])
    ann, bo = await _customer(runtime, "ann@x.test"), await _customer(runtime, "bo@x.test")
    async with runtime.factory() as session, session.begin():
        await customers.merge(session, bo, ann, actor="test")
    totals = await _totals(runtime)
    assert bo not in totals and totals[ann] == (3, 3, 4500, date(2025, 6, 1))
    assert totals == await _recounted(runtime)


async def test_edits_and_deletes_count_the_touched_customers_again(runtime: Runtime) -> None:
    await _import(runtime, ["a1,2025-01-10,10,ann@x.test", "a2,2025-04-10,20,ann@x.test", "b1,2025-02-01,5,bo@x.test"])
    ann, bo = await _customer(runtime, "ann@x.test"), await _customer(runtime, "bo@x.test")
    async with runtime.factory() as session, session.begin():
        await session.execute(update(Stay).where(col(Stay.external_id) == "a2")
                              .values(amount_cents=99, kind="order", stay_date=date(2025, 1, 1)))
    assert (await _totals(runtime))[ann] == (2, 1, 1099, date(2025, 1, 10))
    async with runtime.factory() as session, session.begin():
        await session.execute(delete(Stay).where(col(Stay.external_id) == "b1"))
        await session.execute(delete(Stay).where(col(Stay.external_id) == "a1"))
    totals = await _totals(runtime)
    assert bo not in totals and totals[ann] == (1, 0, 99, date(2025, 1, 1))
    assert totals == await _recounted(runtime)
    async with runtime.factory() as session:
        assert await session.get(Customer, bo) is not None  # the customer stays; only the totals row goes

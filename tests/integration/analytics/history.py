"""A small generated history whose retention, cohort and stage figures were worked out by hand.

Stays by month (2025):       Jan   Feb   Mar   Apr
  A (alice@x.test)            x     x     x
  B (bruno@x.test)            x           x
  C (carla@x.test)                  xx    x
  D (dario@x.test)                        x
  E (elsa@x.test)             x                 x

Active: Jan {A,B,E}=3, Feb {A,C}=2, Mar {A,B,C,D}=4, Apr {E}=1.
Retention: Feb 1/3 (A), Mar 2/2 (A,C), Apr 0/4; Jan has no previous period.
Cohorts: Jan {A,B,E} -> [3,1,2,1]; Feb {C} -> [1,1,0]; Mar {D} -> [1,0].
Quarters: Q1 all five, Q2 {E}: retention 1/5.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from hub.analytics import orders
from hub.runtime import Runtime
from hub.store.models import Customer, Identity

CSV = """external_id,date,amount,email,product,kind,nights
s1,2025-01-05,200.00,alice@x.test,room,stay,2
s2,2025-02-10,150.00,alice@x.test,room,stay,1
s3,2025-03-15,180.00,alice@x.test,spa,order,0
s4,2025-01-20,90.50,bruno@x.test,room,stay,1
s5,2025-03-01,120.00,bruno@x.test,room,stay,1
s6,2025-02-02,300.00,carla@x.test,suite,stay,2
s7,2025-02-25,60.00,carla@x.test,spa,order,0
s8,2025-03-30,310.00,carla@x.test,suite,stay,2
s9,2025-03-10,80.00,dario@x.test,room,stay,1
s10,2025-01-31,100.00,elsa@x.test,room,stay,1
s11,2025-04-01,100.00,elsa@x.test,dinner,order,0
"""

NAMES = ("alice", "bruno", "carla", "dario", "elsa")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def load(runtime: Runtime) -> dict[str, int]:
    """Import the stays; returns customer ids by first name."""
    async with runtime.factory() as session, session.begin():
        report = await orders.import_text(session, "history.csv", CSV)
    assert report.errors == [] and report.inserted == 11
    async with runtime.factory() as session:
        rows = (await session.execute(select(Identity.value, Identity.customer_id))).all()
        ids = {value.split("@")[0]: cid for value, cid in rows}
        assert set(ids) == set(NAMES)
        for name in NAMES:
            customer = await session.get(Customer, ids[name])
            assert customer is not None
    return ids

"""Classifier speed on PostgreSQL against a bare aggregate over the same stays, in the same run.

Creates a throwaway database, generates N customers and 5*N stays (plus some complaints,
surveys and referrals) with generate_series, then times:
  floor:    SELECT customer_id, max(stay_date), count(*), sum(amount_cents) FROM stay GROUP BY customer_id
            (the per-customer aggregate any RFM needs; every aggregate is folded on the server so it is
            computed but no rows travel), with the classifier's own transaction settings (work_mem);
  classify: what the nightly cron runs, hub.analytics.jobs.run_classifier() on a runtime with its real
            event handlers: features (the purchase figures from `staytotals`, which triggers on stay
            keep), NTILE quintiles, the rules as one CASE, the moves into a temp table, the history
            INSERT, the stage UPDATE, the customer.stage_changed events (rows and handler calls),
            committed. The price of keeping `staytotals` is paid when stays are written: the night's
            import of 1% new stays is run under EXPLAIN ANALYZE and its trigger times printed.
Prints both times and floor/classify (target >= 0.3) for the first run (most customers move) and
for a nightly run after 1% new stays (few move), with the load average (the machine may be shared).
Between the two the tables the first run wrote are vacuumed, as autovacuum would do in a day.

Seeding 1M customers takes minutes: `--template NAME` seeds into database NAME once and keeps it, and
each later run with the same NAME starts from a file copy of it instead (same size required).
`--explain` prints EXPLAIN (ANALYZE, BUFFERS) of the decision query first; `--statements` prints the time
of every statement the classifier sends.

    python bench/analytics.py [--customers 1000000] [--stays-per-customer 5] [--keep]
                              [--template NAME] [--explain] [--statements]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Select
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from hub import runtime as hub_runtime
from hub.analytics import classifier, jobs
from hub.settings import load_settings
from hub.store import migrate
from hub.store.types import utcnow

PG_BASE = os.environ.get("HUB_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")

GENERATE = [
    # Customers; every 50th names a referrer (attributes are strings, as the condition language expects).
    """INSERT INTO customer (id, display_name, language, timezone, lifecycle_stage, tags, attributes,
                             created_at, updated_at)
       SELECT g, 'Guest ' || g, 'it', 'Europe/Rome', 'prospect',
              CASE WHEN g % 997 = 0 THEN '["abusive"]'::jsonb ELSE '[]'::jsonb END,
              CASE WHEN g % 50 = 0 THEN jsonb_build_object('referred_by', (1 + (g::bigint * 7919) % :n)::text)
                   ELSE '{}'::jsonb END,
              now(), now()
       FROM generate_series(1, :n) AS g""",
    "SELECT setval(pg_get_serial_sequence('customer', 'id'), :n)",
    """INSERT INTO stagechange (customer_id, from_stage, to_stage, cause, changed_at)
       SELECT g, NULL, 'prospect', 'created', now() FROM generate_series(1, :n) AS g""",
    # Stays land on 80% of customers, unevenly (a multiplicative hash), over five years.
    """INSERT INTO stay (customer_id, external_id, kind, product, amount_cents, stay_date, nights, source,
                         imported_at)
       SELECT 1 + (g::bigint * 2654435761) % (:n * 4 / 5), 's' || g,
              CASE WHEN g % 4 = 0 THEN 'order' ELSE 'stay' END,
              (ARRAY['room', 'suite', 'spa', 'dinner', 'transfer'])[1 + g % 5],
              5000 + (g::bigint * 7919) % 95000, DATE '2021-01-01' + ((g::bigint * 31) % 1800)::int,
              1 + g % 7, 'bench', now()
       FROM generate_series(1, :stays) AS g""",
    """INSERT INTO complaint (customer_id, title, category, severity, status, opened_by, opened_at)
       SELECT 1 + (g::bigint * 104729) % :n, 'noise', 'noise', 'normal', 'open', 'bench', now()
       FROM generate_series(1, :n / 50) AS g""",
    """INSERT INTO "case" (customer_id, workflow, state, data, opened_at)
       SELECT 1 + (g::bigint * 15485863) % :n, 'hotel_stay', 'closed_success', '{}'::jsonb, now()
       FROM generate_series(1, :n / 20) AS g""",
    """INSERT INTO survey (case_id, customer_id, channel, template_name, questions, answers, score, status,
                           sent_at)
       SELECT c.id, c.customer_id, 'sms', 'departure_survey', '["q"]'::jsonb, '[5]'::jsonb,
              3 + (c.id % 3), 'answered', now()
       FROM "case" AS c""",
]
# A night's worth of new business: 1% more stays, for customers old and new to buying.
NIGHT = """INSERT INTO stay (customer_id, external_id, kind, product, amount_cents, stay_date, nights, source,
                             imported_at)
           SELECT 1 + (g::bigint * 40503) % :n, 'night' || g, 'stay', 'room', 90000, DATE '2025-12-31', 1, 'bench',
                  now()
           FROM generate_series(1, :stays / 100) AS g"""
FLOOR = ("SELECT count(*), max(last), sum(n), sum(spend) FROM (SELECT customer_id, max(stay_date) AS last, "
         "count(*) AS n, sum(amount_cents) AS spend FROM stay GROUP BY customer_id) AS per_customer")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


async def generate(engine: AsyncEngine, customers: int, stays: int) -> float:
    started = time.perf_counter()
    async with engine.begin() as conn:
        for statement in GENERATE:
            await conn.execute(text(statement), {"n": customers, "stays": stays})
    # Vacuumed like a live database (autovacuum), so the first timed run does not pay for setting
    # the hint bits of a million freshly loaded customer rows.
    await vacuum(engine)
    return time.perf_counter() - started


async def vacuum(engine: AsyncEngine, *tables: str) -> float:
    """VACUUM ANALYZE these tables (all if none): autovacuum's work, which this cluster may have turned off."""
    started = time.perf_counter()
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM ANALYZE {', '.join(tables)}"))
    return time.perf_counter() - started


async def timed_floor(runtime: hub_runtime.Runtime) -> tuple[float, int]:
    async with runtime.factory() as session, session.begin():
        await classifier.tune(session)
        started = time.perf_counter()
        groups = (await session.execute(text(FLOOR))).one()[0]
        return time.perf_counter() - started, int(groups)


class Explain(Executable, ClauseElement):
    """`EXPLAIN (ANALYZE, BUFFERS) <query>`, compiled with the query's own parameters."""

    inherit_cache = False

    def __init__(self, query: Select[Any]) -> None:
        self.query = query


@compiles(Explain)
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXPLAIN (ANALYZE, BUFFERS) {compiler.process(element.query, **kw)}"


async def explain_decisions(runtime: hub_runtime.Runtime) -> None:
    """The decision query's plan with its real timings, under the classifier's settings; nothing is kept."""
    async with runtime.factory() as session, session.begin():
        now = utcnow()
        query = classifier.decisions(await classifier.load_rules(session), now.date(), now,
                                     session.get_bind().dialect)
        await classifier.tune(session)
        plan = (await session.execute(Explain(query))).scalars().all()
        await session.rollback()
    print("decision query plan:")
    print("\n".join(f"    {line}" for line in plan))


class StatementClock:
    """Wall time of every statement sent while on, summed per statement text in first-seen order."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.on, self.started = False, 0.0
        self.totals: dict[str, list[float]] = {}
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        self.started = time.perf_counter()

    def _after(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if self.on:
            entry = self.totals.setdefault(" ".join(statement.split())[:110], [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - self.started

    def report(self) -> None:
        for statement, (n, took) in self.totals.items():
            print(f"    {took:7.2f} s  {int(n):>8,}x  {statement}")
        self.totals = {}


async def timed_classify(
    runtime: hub_runtime.Runtime, clock: StatementClock | None,
) -> tuple[float, classifier.ClassifyResult]:
    if clock:
        clock.on = True
    started = time.perf_counter()
    result = await jobs.run_classifier(runtime)
    took = time.perf_counter() - started
    if clock:
        clock.on = False
        clock.report()
    return took, result


async def bench(url: str, customers: int, stays: int, *, seeded: bool, explain: bool, statements: bool) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        runtime = await hub_runtime.build(load_settings(database_url=url, data_dir=Path(data_dir)), use_redis=False)
        try:
            if not seeded:
                took = await generate(runtime.engine, customers, stays)
                print(f"generated {customers:,} customers, {stays:,} stays in {took:.1f} s ({load()})")
            if explain:
                await explain_decisions(runtime)
            await run_bench(runtime, customers, stays, StatementClock(runtime.engine) if statements else None)
        finally:
            await hub_runtime.close(runtime)


async def run_bench(runtime: hub_runtime.Runtime, customers: int, stays: int, clock: StatementClock | None) -> None:
    print(f"event handlers: {', '.join(getattr(h, '__name__', type(h).__name__) for h in runtime.handlers)}")
    await timed_floor(runtime)  # warm the cache, so both timings read the same pages from memory
    floor, groups = await timed_floor(runtime)
    first, result = await timed_classify(runtime, clock)
    floor = min(floor, (await timed_floor(runtime))[0])
    print(f"floor (bare GROUP BY over stays, {groups:,} customers): {floor:.2f} s")
    print(f"classify, first run (applied, {result.changed:,} moves): {first:.2f} s ({load()})")
    for (a, b), n in sorted(result.moves.items()):
        print(f"    {a:>10} -> {b:<10} {n:,}")
    print(f"ratio floor/classify, first run: {floor / first:.2f} (target >= 0.3)")
    took = await vacuum(runtime.engine, "customer", "stagechange", "domainevent")
    print(f"vacuumed the tables the first run wrote, as autovacuum would during the day: {took:.1f} s")
    night, triggers = await timed_night(runtime, customers, stays)
    print(f"a night's import of {stays // 100:,} stays (EXPLAIN ANALYZE): {night:.2f} s, of which triggers: "
          + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in triggers.items()))
    floor = (await timed_floor(runtime))[0]  # the floor over the same stays the nightly run reads
    nightly, result = await timed_classify(runtime, clock)
    floor = min(floor, (await timed_floor(runtime))[0])
    print(f"floor after the new stays: {floor:.2f} s")
    print(f"classify, nightly run after 1% new stays ({result.changed:,} moves): {nightly:.2f} s ({load()})")
    print(f"ratio floor/classify, nightly: {floor / nightly:.2f} (target >= 0.3)")


async def timed_night(runtime: hub_runtime.Runtime, customers: int, stays: int) -> tuple[float, dict[str, float]]:
    """The night's INSERT into stay, run under EXPLAIN ANALYZE: (seconds in all, seconds per trigger)."""
    async with runtime.engine.begin() as conn:
        plan = (await conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {NIGHT}"),
                                   {"n": customers, "stays": stays})).scalar_one()
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]
    await vacuum(runtime.engine, "stay", "staytotals")  # as autovacuum would after the import
    return top["Execution Time"] / 1000, {t["Trigger Name"]: t["Time"] / 1000 for t in top.get("Triggers", [])}


MARK = "hub analytics bench:"  # the template database's comment starts so


async def seeded_template(admin: AsyncEngine, template: str, customers: int, stays: int) -> None:
    """Make sure database `template` holds this size of data, seeding it the first time."""
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    mark = f"{MARK} {customers} customers, {stays} stays, schema {head}"
    async with admin.connect() as conn:
        found = (await conn.execute(text("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                         "WHERE datname = :name"), {"name": template})).first()
        if found is not None and found[0] == mark:
            return
        if found is not None and not str(found[0]).startswith(MARK):
            raise SystemExit(f"database {template} exists and is not a bench seed ({found[0]!r})")
        if found is not None:  # a seed of another size or an older schema: seeded again
            await conn.execute(text(f'DROP DATABASE "{template}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{template}"'))
    with tempfile.TemporaryDirectory() as data_dir:
        url = f"{PG_BASE}/{template}"
        runtime = await hub_runtime.build(load_settings(database_url=url, data_dir=Path(data_dir)), use_redis=False)
        try:
            took = await generate(runtime.engine, customers, stays)
        finally:
            await hub_runtime.close(runtime)
    print(f"seeded {template}: {customers:,} customers, {stays:,} stays in {took:.1f} s ({load()})")
    async with admin.connect() as conn:
        await conn.execute(text(f"COMMENT ON DATABASE \"{template}\" IS '{mark}'"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--stays-per-customer", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--template", metavar="NAME",
                        help="Seed into database NAME once (kept), and start each run from a copy of it.")
    parser.add_argument("--explain", action="store_true",
                        help="Print EXPLAIN (ANALYZE, BUFFERS) of the decision query.")
    parser.add_argument("--statements", action="store_true", help="Print the time of each classifier statement.")
    args = parser.parse_args()
    customers, stays = args.customers, args.customers * args.stays_per_customer
    name = f"hubbench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    if args.template:
        await seeded_template(admin, args.template, customers, stays)
    async with admin.connect() as conn:
        # FILE_COPY copies the files as they are (vacuumed, analysed), without writing them all to the WAL.
        source = f' TEMPLATE "{args.template}" STRATEGY FILE_COPY' if args.template else ""
        await conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
    try:
        await bench(f"{PG_BASE}/{name}", customers, stays, seeded=bool(args.template), explain=args.explain,
                    statements=args.statements)
    finally:
        if not args.keep:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())

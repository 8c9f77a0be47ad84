"""Place every customer in a lifecycle stage by ordered rules over RFM features, in a few SQL statements.

Rules are data: `{"stage": ..., "condition": <condition language>}`, first match wins, `keep`
leaves the customer where it is. They live in the `stagerule` table; with none there the
defaults below apply. The moves are computed once into a temporary table, then applied by one
statement on PostgreSQL: the UPDATE of the current stage returns the moves to the INSERTs of the
history rows and of the `customer.stage_changed` event rows (three statements on SQLite). No
Python loop over customers: only the in-process event handlers, when given, are called once per
move (a handler is Python; SQL cannot call it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause, Insert, Select
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from sqlmodel import col

from hub.analytics import rfm
from hub.analytics.stages import STAGE_CHANGED
from hub.core.events import Event, EventHandler, accepts
from hub.routing.conditions import All, AnyOf, Condition, ConditionError, Not, compile_sql, validate
from hub.store.models import LIFECYCLE_STAGES, Customer, DomainEvent, StageChange, StageRule, table
from hub.store.types import UTCDateTime, utcnow

KEEP = "keep"
EVENT_BATCH = 10_000  # moves read per keyset batch when handlers are called
WORK_MEM = "256MB"

DEFAULT_RULES: list[dict[str, Any]] = [
    {"stage": KEEP, "description": "an agent pinned the stage with the tag stage_locked",
     "condition": {"field": "customer.tags", "op": "contains", "value": "stage_locked"}},
    {"stage": "sub_zero", "description": "abusive, unprofitable, or many complaints for little business",
     "condition": {"any": [
         {"field": "customer.tags", "op": "contains", "value": "abusive"},
         {"field": "customer.attributes.unprofitable", "op": "equals", "value": "yes"},
         {"all": [{"field": "complaints.count", "op": "gte", "value": 3},
                  {"field": "rfm.m", "op": "lte", "value": 2}]},
     ]}},
    {"stage": "prospect", "description": "no stay yet",
     "condition": {"field": "rfm.stays", "op": "equals", "value": 0}},
    {"stage": "advocate", "description": "survey promoter who referred others",
     "condition": {"all": [{"field": "survey.score", "op": "gte", "value": 4.5},
                           {"field": "referrals.count", "op": "gte", "value": 1}]}},
    {"stage": "key", "description": "high frequency and high spend",
     "condition": {"all": [{"field": "rfm.f", "op": "gte", "value": 4}, {"field": "rfm.m", "op": "gte", "value": 4}]}},
    {"stage": "cultivable", "description": "everyone else who has stayed", "condition": {"all": []}},
]


@dataclass(frozen=True, slots=True)
class StageRuleSpec:
    """One rule as data: where matching customers go, and why."""

    stage: str
    condition: dict[str, Any]
    description: str = ""


@dataclass
class ClassifyResult:
    """Moves per (from, to) pair; `sample` lists a few (customer id, from, to) for the dry run."""

    moves: dict[tuple[str, str], int] = field(default_factory=dict)
    sample: list[tuple[int, str, str]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> int:
        return sum(self.moves.values())

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "changed": self.changed,
                "moves": [{"from": a, "to": b, "count": n} for (a, b), n in sorted(self.moves.items())],
                "sample": [{"customer_id": c, "from": a, "to": b} for c, a, b in self.sample]}


def parse_rules(data: Sequence[dict[str, Any]]) -> list[StageRuleSpec]:
    """Rules from JSON data, checked: known stages and valid conditions, errors naming the rule index."""
    rules, errors = [], []
    for n, item in enumerate(data):
        stage = item.get("stage")
        if stage != KEEP and stage not in LIFECYCLE_STAGES:
            errors.append((f"$[{n}].stage", f"unknown stage {stage!r}"))
            continue
        try:
            validate(item.get("condition", {}), fields=rfm.FIELDS)
        except ConditionError as exc:
            errors.extend((f"$[{n}].condition{path[1:]}", message) for path, message in exc.errors)
            continue
        rules.append(StageRuleSpec(str(stage), dict(item.get("condition", {})), str(item.get("description", ""))))
    if errors:
        raise ConditionError(errors)
    return rules


async def load_rules(session: AsyncSession) -> list[StageRuleSpec]:
    """The enabled rules from the table in position order, or the defaults when there are none."""
    rows = (await session.execute(select(StageRule).where(col(StageRule.enabled).is_(True))
                                  .order_by(col(StageRule.position), col(StageRule.id)))).scalars().all()
    if not rows:
        return parse_rules(DEFAULT_RULES)
    return parse_rules([{"stage": r.stage, "condition": r.condition, "description": r.description} for r in rows])


async def save_rules(session: AsyncSession, rules: Sequence[StageRuleSpec]) -> None:
    """Replace the rule table with these rules, in this order."""
    await session.execute(StageRule.__table__.delete())  # type: ignore[attr-defined]
    session.add_all([StageRule(position=n, stage=r.stage, condition=r.condition, description=r.description)
                     for n, r in enumerate(rules)])


def fields_of(cond: Condition) -> set[str]:
    """Every field a condition tests; `customer.attributes.x` counts as `customer.attributes`."""
    if isinstance(cond, All | AnyOf):
        return set().union(*(fields_of(child) for child in cond.children))
    if isinstance(cond, Not):
        return fields_of(cond.child)
    return {cond.field.parent or cond.field.name}


def decisions(rules: Sequence[StageRuleSpec], today: date, now: datetime, dialect: Any) -> Select[Any]:
    """customer_id, from_stage, to_stage for every customer whose stage the rules would change."""
    conditions = [validate(r.condition, fields=rfm.FIELDS) for r in rules]
    # Only the figures some rule tests are computed: each quintile is a sort, each source of figures a join.
    scored = rfm.features(today, dialect, used=set().union(*(fields_of(c) for c in conditions)))
    mapped = rfm.columns(scored)
    current: ColumnElement[Any] = scored.c.lifecycle_stage
    whens = [(compile_sql(cond, mapped, now=now), current if r.stage == KEEP else literal(r.stage))
             for r, cond in zip(rules, conditions, strict=True)]
    target = case(*whens, else_=current) if whens else current
    # OFFSET 0 keeps the planner from inlining the subquery, which would evaluate the CASE twice per
    # customer (once to filter, once to project).
    decided = (select(scored.c.customer_id, current.label("from_stage"), target.label("to_stage"))
               .offset(0).subquery("decided"))
    return select(decided.c.customer_id, decided.c.from_stage, decided.c.to_stage).where(
        decided.c.to_stage != decided.c.from_stage)


_moves = Table("analytics_moves", MetaData(), Column("customer_id", BigInteger), Column("from_stage", String(20)),
               Column("to_stage", String(20)))


class CreateTempAs(Executable, ClauseElement):
    """`CREATE TEMPORARY TABLE name AS SELECT ...`: unlike INSERT ... SELECT, PostgreSQL may run it in parallel."""

    inherit_cache = False

    def __init__(self, name: str, query: Select[Any]) -> None:
        self.name, self.query = name, query


@compiles(CreateTempAs)
def _create_temp_as(element: CreateTempAs, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CREATE TEMPORARY TABLE {element.name} AS {compiler.process(element.query, **kw)}"


async def tune(session: AsyncSession) -> None:
    """Settings for this transaction's scans over every customer, on PostgreSQL (SET LOCAL ends at commit)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    # Sorts and hashes over every customer stay in memory; with the default 4MB the planner
    # falls back to an index-order aggregate over the stays that is several times slower.
    await session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    # JIT-compiled expressions pay off, but inlining and -O3 on this large a plan cost more to
    # compile (1.7 s at 1M customers) than they win back.
    await session.execute(text("SET LOCAL jit_inline_above_cost = -1"))
    await session.execute(text("SET LOCAL jit_optimize_above_cost = -1"))


async def classify(
    session: AsyncSession, *, rules: Sequence[StageRuleSpec] | None = None, today: date | None = None,
    dry_run: bool = False, handlers: Sequence[EventHandler] | None = None, actor: str = "classifier",
    sample: int = 20,
) -> ClassifyResult:
    """Classify every customer; unless `dry_run`, record the changes and (given handlers) raise their events."""
    now = utcnow()
    chosen = list(rules) if rules is not None else await load_rules(session)
    dialect = session.get_bind().dialect
    query = decisions(chosen, today or now.date(), now, dialect)
    await tune(session)
    await session.execute(text("DROP TABLE IF EXISTS analytics_moves"))
    await session.execute(CreateTempAs("analytics_moves", query))
    if dialect.name == "postgresql":
        # Temporary tables are never auto-analysed; without row counts the UPDATE may pick a nested loop.
        await session.execute(text("ANALYZE analytics_moves"))
    result = await _summary(session, sample)
    result.dry_run = dry_run
    if not dry_run and result.moves:
        # Events are stored only where someone listens: a run given handlers (even none).
        await _apply(session, now, actor, None if handlers is None else _payloads(result.moves, now, actor))
        if handlers is not None:
            await _announce(session, now, actor, tuple(handlers))
    await session.execute(text("DROP TABLE analytics_moves"))
    return result


async def _summary(session: AsyncSession, sample: int) -> ClassifyResult:
    m = _moves.c
    pairs = await session.execute(select(m.from_stage, m.to_stage, func.count()).group_by(m.from_stage, m.to_stage))
    some = await session.execute(select(m.customer_id, m.from_stage, m.to_stage).order_by(m.customer_id)
                                 .limit(sample))
    return ClassifyResult(moves={(a, b): int(n) for a, b, n in pairs.all()},
                          sample=[(int(c), a, b) for c, a, b in some.all()])


_Payloads = dict[tuple[str, str], dict[str, Any]]  # a move's event payload by its (from, to) stages


async def _apply(session: AsyncSession, now: datetime, actor: str, payloads: _Payloads | None) -> None:
    """Move the customers, record their history and (given payloads) their events: one statement on PostgreSQL."""
    m, customers = _moves.c, table(Customer)
    move = (update(customers).values(lifecycle_stage=m.to_stage, updated_at=literal(now, UTCDateTime()))
            .where(customers.c.id == m.customer_id))
    if session.get_bind().dialect.name != "postgresql":
        # SQLite has no data-modifying WITH: one statement per table, each reading the moves.
        await session.execute(move)
        await session.execute(_history(_moves, now, actor))
        if payloads is not None:
            await session.execute(_events(_moves, now, payloads))
        return
    # The UPDATE's RETURNING feeds both INSERTs, so the moves are read once; the history's foreign-key
    # checks, run at the end of the statement, then lock the customer rows the UPDATE just wrote.
    moved = move.returning(m.customer_id, m.from_stage, m.to_stage).cte("moved")
    history = _history(moved, now, actor)
    statement = history if payloads is None else _events(moved, now, payloads).add_cte(history.cte("history"))
    await session.execute(statement.add_cte(moved))


def _history(moves: FromClause, now: datetime, actor: str) -> Insert:
    """The stage-history rows of these moves."""
    m = moves.c
    rows = select(m.customer_id, m.from_stage, m.to_stage, literal("classifier"), literal(actor),
                  literal(now, UTCDateTime()))
    return insert(table(StageChange)).from_select(
        ["customer_id", "from_stage", "to_stage", "cause", "actor", "changed_at"], rows)


def _event_data(now: datetime, actor: str) -> dict[str, Any]:
    """What a `customer.stage_changed` event says besides the two stages."""
    return {"cause": "classifier", "actor": actor, "at": now.isoformat()}


def _payloads(pairs: Iterable[tuple[str, str]], now: datetime, actor: str) -> _Payloads:
    """The payload publish() would store for a move, per (from, to) pair: nothing else in it varies."""
    return {(a, b): {"message_id": None, "from_stage": a, "to_stage": b, **_event_data(now, actor)} for a, b in pairs}


def _events(moves: FromClause, now: datetime, payloads: _Payloads) -> Insert:
    """The `customer.stage_changed` rows for live streams, one per move, each payload joined by its pair."""
    m, kind = moves.c, table(DomainEvent).c.payload.type
    # A few pairs, so each payload is built once in Python instead of once per row in SQL.
    each = [select(literal(a, String()).label("from_stage"), literal(b, String()).label("to_stage"),
                   literal(payload, kind).label("payload")) for (a, b), payload in payloads.items()]
    known = (union_all(*each) if len(each) > 1 else each[0]).subquery("payloads")
    rows = (select(literal(STAGE_CHANGED), m.customer_id, known.c.payload, literal(now, UTCDateTime()))
            .join_from(moves, known, and_(known.c.from_stage == m.from_stage, known.c.to_stage == m.to_stage)))
    return insert(table(DomainEvent)).from_select(["type", "customer_id", "payload", "at"], rows)


async def _announce(session: AsyncSession, now: datetime, actor: str, handlers: tuple[EventHandler, ...]) -> None:
    """Run the handlers on each move's event in customer order, a batch of moves at a time."""
    handlers = tuple(h for h in handlers if accepts(h, STAGE_CHANGED))
    if not handlers:
        return
    m, extra, after = _moves.c, _event_data(now, actor), -1
    # Keyset batches need the index: without it every batch would re-scan and sort the whole table.
    await session.execute(text("CREATE INDEX analytics_moves_customer ON analytics_moves (customer_id)"))
    while True:
        batch = (await session.execute(select(m.customer_id, m.from_stage, m.to_stage).where(m.customer_id > after)
                                       .order_by(m.customer_id).limit(EVENT_BATCH))).all()
        if not batch:
            return
        for customer_id, from_stage, to_stage in batch:
            data = {"from_stage": from_stage, "to_stage": to_stage, **extra}
            event = Event(STAGE_CHANGED, int(customer_id), data=data)
            for handler in handlers:
                await handler(session, event)
        after = int(batch[-1][0])

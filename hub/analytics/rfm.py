"""RFM features per customer as one set-based query: recency, frequency, monetary and their quintiles.

Quintiles come from NTILE(5) window functions (SQLite >= 3.25 and PostgreSQL) over the customers
who bought at least once (the rows of `staytotals`, kept by triggers on `stay`); 5 is best (most
recent, most frequent, highest spend), 0 means no purchase.
Ties are broken by customer id so a run is deterministic. The query holds only what the rules
test: each quintile costs a sort of every buying customer, the purchase figures one join and the
survey, complaint and referral figures one more between them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Integer,
    String,
    case,
    cast,
    func,
    literal,
    null,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select, Subquery
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine
from sqlmodel import col

from hub.routing.conditions import FieldRegistry, FieldSpec, FieldType, SqlField
from hub.routing.conditions.sql import Columns
from hub.store.models import Complaint, Customer, StayTotals, Survey, table

_N, _S, _L, _O = FieldType.NUMBER, FieldType.STR, FieldType.STR_LIST, FieldType.DICT

# What classifier rules may test; each name maps to a column of `features()`.
FIELDS = FieldRegistry([
    FieldSpec("rfm.recency_days", _N, "days since the last stay or purchase (unset if none)"),
    FieldSpec("rfm.frequency", _N, "number of stays and purchases"),
    FieldSpec("rfm.stays", _N, "number of stays"),
    FieldSpec("rfm.monetary", _N, "total spent, in currency units"),
    FieldSpec("rfm.r", _N, "recency quintile, 5 = most recent, 0 = never bought"),
    FieldSpec("rfm.f", _N, "frequency quintile, 5 = most frequent, 0 = never bought"),
    FieldSpec("rfm.m", _N, "monetary quintile, 5 = highest spend, 0 = never bought"),
    FieldSpec("survey.score", _N, "average departure-survey score, 1-5 (unset if never answered)"),
    FieldSpec("complaints.count", _N, "complaints ever opened for the customer"),
    FieldSpec("referrals.count", _N, "customers whose attribute referred_by names this customer"),
    FieldSpec("customer.lifecycle_stage", _S, "the current stage"),
    FieldSpec("customer.language", _S, "preferred language code"),
    FieldSpec("customer.tags", _L, "tags on the customer"),
    FieldSpec("customer.attributes", _O, "custom attributes; test one with customer.attributes.<key>"),
])


def days_between(later: date, earlier: ColumnElement[Any], dialect: Dialect) -> ColumnElement[Any]:
    """Whole days from a date column to `later`, in the dialect's own date arithmetic."""
    if dialect.name == "sqlite":
        return cast(func.julianday(literal(later.isoformat())) - func.julianday(earlier), Integer)
    return literal(later) - earlier


def as_customer_id(value: ColumnElement[Any], dialect: Dialect) -> ColumnElement[Any]:
    """A text value as an integer id when it is one written plainly ("42", not "042" or "4x"), else NULL."""
    if dialect.name == "sqlite":
        number = cast(value, Integer)
        return case((cast(number, String) == value, number))
    # At most 18 digits, so the cast can never overflow a bigint.
    return case((value.regexp_match("^[1-9][0-9]{0,17}$"), cast(value, BigInteger)))


# The columns of `features()` each field reads; the purchase figures are NULL-free (0) but recency.
_COLUMN = {
    "rfm.recency_days": "recency_days", "rfm.frequency": "frequency", "rfm.stays": "stays",
    "rfm.monetary": "monetary", "rfm.r": "r", "rfm.f": "f", "rfm.m": "m", "survey.score": "survey_score",
    "complaints.count": "complaints", "referrals.count": "referrals",
}


def _purchases(today: date, dialect: Dialect, wanted: Collection[str]) -> Subquery:
    """One row per buying customer with the wanted figures among last date, counts, spend and quintiles.

    From `staytotals`, the per-customer sums the database keeps as stays are written, not from
    every stay again.
    """
    totals = table(StayTotals).c
    buyer, last = totals.customer_id, totals.last_date
    figures: dict[str, ColumnElement[Any]] = {
        "recency_days": days_between(today, last, dialect),
        "frequency": totals.visits,
        "stays": totals.stays,
        "monetary_cents": totals.spend_cents,
        "r": func.ntile(5).over(order_by=(last, buyer)),
        "f": func.ntile(5).over(order_by=_one_key(totals.visits, buyer)),
        "m": func.ntile(5).over(order_by=_one_key(totals.spend_cents, buyer)),
    }
    chosen = [figure.label(name) for name, figure in figures.items() if name in wanted]
    return select(buyer.label("customer_id"), *chosen).subquery("purchases")


def _one_key(value: ColumnElement[Any], customer_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """One integer ordered exactly like (value, customer_id): value * (highest customer id + 1) + customer_id.

    Counts tie on most rows, so a sort on two keys falls through to the second on nearly every
    comparison; on this one key it costs a third as much (1M customers, 5M stays), and a spend
    sorts as a bigint instead of a numeric. Exact while value * (highest id + 1) fits in 63 bits:
    a billion customers with nine billion stays each, or a million who spent 92 billion each
    (in cents); past that PostgreSQL stops with "bigint out of range" rather than mis-rank.
    """
    span = select(func.max(Customer.id) + 1).scalar_subquery()
    return value * span + customer_id


def _purchase_columns(bought: Subquery, wanted: Collection[str]) -> list[ColumnElement[Any]]:
    zero = literal(0)
    columns: list[ColumnElement[Any]] = []
    for name in ("recency_days", "frequency", "stays", "r", "f", "m"):
        if name in wanted:
            column = bought.c[name]
            columns.append(column if name == "recency_days" else func.coalesce(column, zero).label(name))
    if "monetary" in wanted:
        columns.append((cast(func.coalesce(bought.c.monetary_cents, zero), Float) / 100).label("monetary"))
    return columns


def _surveys() -> Subquery:
    return (select(col(Survey.customer_id).label("customer_id"), func.avg(Survey.score).label("value"))
            .where(col(Survey.score).is_not(None)).group_by(col(Survey.customer_id)).subquery("surveys"))


def _complaints() -> Subquery:
    return (select(col(Complaint.customer_id).label("customer_id"), func.count().label("value"))
            .group_by(col(Complaint.customer_id)).subquery("complaints"))


def _referrals(dialect: Dialect) -> Subquery:
    # Grouped by the referrer's id as a number, so the join below compares integers, not id::text.
    referrer = as_customer_id(type_coerce(Customer.attributes, JSON)["referred_by"].as_string(), dialect)
    return (select(referrer.label("customer_id"), func.count().label("value"))
            .where(referrer.is_not(None)).group_by(referrer).subquery("referrals"))


# Figures from other tables, each set only for the few customers who have one: source and SQL type.
_OTHERS: dict[str, tuple[Callable[[Dialect], Subquery], TypeEngine[Any]]] = {
    "survey_score": (lambda _dialect: _surveys(), Float()),
    "complaints": (lambda _dialect: _complaints(), BigInteger()),
    "referrals": (_referrals, BigInteger()),
}


def _others(dialect: Dialect, names: Sequence[str]) -> Subquery:
    """These survey, complaint and referral figures in one row per customer who has any (NULL where none).

    One subquery, so every customer is joined once instead of once per figure."""
    branches = []
    for name in names:
        source = _OTHERS[name][0](dialect)
        branches.append(select(source.c.customer_id, *(
            (source.c.value if other == name else cast(null(), _OTHERS[other][1])).label(other) for other in names)))
    each = (union_all(*branches) if len(branches) > 1 else branches[0]).subquery("each_source")
    return (select(each.c.customer_id, *(func.max(each.c[name]).label(name) for name in names))
            .group_by(each.c.customer_id).subquery("others"))


def features(today: date, dialect: Dialect, used: Collection[str] | None = None) -> Subquery:
    """Every live customer with the RFM, survey, complaint and referral figures the `used` fields need (all if None).

    Missing figures are 0; survey score and recency stay NULL when there is nothing to measure.
    """
    wanted = {_COLUMN[name] for name in (_COLUMN if used is None else used) if name in _COLUMN}
    row: list[ColumnElement[Any]] = [
        col(Customer.id).label("customer_id"), col(Customer.lifecycle_stage).label("lifecycle_stage"),
        col(Customer.language).label("language"), col(Customer.tags).label("tags"),
        col(Customer.attributes).label("attributes")]
    query = select(*row)
    if wanted & {"recency_days", "frequency", "stays", "monetary", "r", "f", "m"}:
        bought = _purchases(today, dialect, wanted | ({"monetary_cents"} if "monetary" in wanted else set()))
        query = _joined(query, bought, _purchase_columns(bought, wanted))
    names = [name for name in _OTHERS if name in wanted]
    if names:
        others = _others(dialect, names)
        query = _joined(query, others, [
            cast(others.c[name], Float).label(name) if name == "survey_score"
            else func.coalesce(others.c[name], literal(0)).label(name) for name in names])
    return query.where(col(Customer.merged_into_id).is_(None)).subquery("features")


def _joined(query: Select[Any], part: Subquery, columns: list[ColumnElement[Any]]) -> Select[Any]:
    """`query` left-joined to a per-customer subquery on its customer_id, with these of its columns added."""
    return query.add_columns(*columns).outerjoin(part, part.c.customer_id == col(Customer.id))


def columns(scored: Subquery) -> Columns:
    """The condition-language field names mapped onto the columns `features()` selected."""
    c = scored.c
    mapped: dict[str, ColumnElement[Any] | SqlField] = {
        field: c[column] for field, column in _COLUMN.items() if column in c}
    return mapped | {
        "customer.lifecycle_stage": c.lifecycle_stage, "customer.language": c.language,
        "customer.tags": SqlField(c.tags, "json_list"), "customer.attributes": SqlField(c.attributes, "json_object"),
    }

"""RFM features per customer as one set-based query: recency, frequency, monetary and their quintiles.

Quintiles come from NTILE(5) window functions (SQLite >= 3.25 and PostgreSQL) over the customers
who bought at least once; 5 is best (most recent, most frequent, highest spend), 0 means no purchase.
Ties are broken by customer id so a run is deterministic.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, cast, func, literal, select, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Subquery
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from hub.routing.conditions import FieldRegistry, FieldSpec, FieldType, SqlField
from hub.routing.conditions.sql import Columns
from hub.store.models import Complaint, Customer, Stay, Survey

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


def _purchases(today: date, dialect: Dialect) -> Subquery:
    """One row per buying customer: last date, counts, spend and the three quintiles."""
    last = func.max(Stay.stay_date)
    frequency = func.count()
    spend = func.sum(Stay.amount_cents)
    stays = func.sum(func.coalesce(cast(col(Stay.kind) == "stay", Integer), 0))
    return (
        select(
            col(Stay.customer_id).label("customer_id"),
            days_between(today, last, dialect).label("recency_days"),
            frequency.label("frequency"), stays.label("stays"), spend.label("monetary_cents"),
            func.ntile(5).over(order_by=(last, col(Stay.customer_id))).label("r"),
            func.ntile(5).over(order_by=(frequency, col(Stay.customer_id))).label("f"),
            func.ntile(5).over(order_by=(spend, col(Stay.customer_id))).label("m"),
        )
        .group_by(col(Stay.customer_id))
        .subquery("purchases")
    )


def features(today: date, dialect: Dialect) -> Subquery:
    """Every live customer with its RFM, survey, complaint and referral figures; missing ones are 0."""
    bought = _purchases(today, dialect)
    surveys = (select(col(Survey.customer_id).label("customer_id"), func.avg(Survey.score).label("score"))
               .where(col(Survey.score).is_not(None)).group_by(col(Survey.customer_id)).subquery("surveys"))
    complaints = (select(col(Complaint.customer_id).label("customer_id"), func.count().label("n"))
                  .group_by(col(Complaint.customer_id)).subquery("complaints"))
    referrer = type_coerce(Customer.attributes, JSON)["referred_by"].as_string()
    referrals = (select(referrer.label("referrer"), func.count().label("n"))
                 .where(referrer.is_not(None)).group_by(referrer).subquery("referrals"))
    zero = literal(0)
    return (
        select(
            col(Customer.id).label("customer_id"),
            col(Customer.lifecycle_stage).label("lifecycle_stage"),
            col(Customer.language).label("language"),
            col(Customer.tags).label("tags"), col(Customer.attributes).label("attributes"),
            bought.c.recency_days,
            func.coalesce(bought.c.frequency, zero).label("frequency"),
            func.coalesce(bought.c.stays, zero).label("stays"),
            (cast(func.coalesce(bought.c.monetary_cents, zero), Float) / 100).label("monetary"),
            func.coalesce(bought.c.r, zero).label("r"),
            func.coalesce(bought.c.f, zero).label("f"),
            func.coalesce(bought.c.m, zero).label("m"),
            cast(surveys.c.score, Float).label("survey_score"),
            func.coalesce(complaints.c.n, zero).label("complaints"),
            func.coalesce(referrals.c.n, zero).label("referrals"),
        )
        .outerjoin(bought, bought.c.customer_id == col(Customer.id))
        .outerjoin(surveys, surveys.c.customer_id == col(Customer.id))
        .outerjoin(complaints, complaints.c.customer_id == col(Customer.id))
        .outerjoin(referrals, referrals.c.referrer == cast(col(Customer.id), String))
        .where(col(Customer.merged_into_id).is_(None))
        .subquery("features")
    )


def columns(scored: Subquery) -> Columns:
    """The condition-language field names mapped onto the columns of `features()`."""
    c = scored.c
    return {
        "rfm.recency_days": c.recency_days, "rfm.frequency": c.frequency, "rfm.stays": c.stays,
        "rfm.monetary": c.monetary, "rfm.r": c.r, "rfm.f": c.f, "rfm.m": c.m,
        "survey.score": c.survey_score, "complaints.count": c.complaints, "referrals.count": c.referrals,
        "customer.lifecycle_stage": c.lifecycle_stage, "customer.language": c.language,
        "customer.tags": SqlField(c.tags, "json_list"), "customer.attributes": SqlField(c.attributes, "json_object"),
    }

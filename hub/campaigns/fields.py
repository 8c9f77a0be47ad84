"""Segment fields: the condition language's customer fields mapped to SQL, plus campaign history.

`campaign.opened` and friends are lists of campaign ids (as text), so "opened campaign 12" is
`{"field": "campaign.opened", "op": "contains", "value": "12"}`.
"""

from __future__ import annotations

from typing import Any
from typing import cast as typing_cast

from sqlalchemy import String, and_, cast, exists, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import JSON
from sqlmodel import col

from hub.routing.conditions import FIELDS, FieldSpec, FieldType, SqlField
from hub.store.models import CampaignEvent, CampaignRecipient, Case, Complaint, Consent, Customer, Identity

SEGMENT_FIELDS = FIELDS.extended([
    FieldSpec("customer.id", FieldType.NUMBER, "the customer's id"),
    FieldSpec("customer.has_email", FieldType.BOOL, "the customer has an email address"),
    FieldSpec("customer.has_phone", FieldType.BOOL, "the customer has a phone number"),
    FieldSpec("consent.email", FieldType.BOOL, "latest marketing consent for email is granted"),
    FieldSpec("consent.sms", FieldType.BOOL, "latest marketing consent for SMS is granted"),
    FieldSpec("campaign.received", FieldType.STR_LIST, "ids of campaigns sent to the customer"),
    FieldSpec("campaign.opened", FieldType.STR_LIST, "ids of campaigns the customer opened"),
    FieldSpec("campaign.clicked", FieldType.STR_LIST, "ids of campaigns the customer clicked"),
])

_CLOSED_COMPLAINTS = ("resolved", "closed", "cancelled")


class json_ids(FunctionElement[Any]):
    """A JSON array of the text of one column over a correlated subquery (aggregate per dialect)."""

    type = JSON()
    inherit_cache = True
    name = "json_ids"


@compiles(json_ids, "sqlite")
def _json_ids_sqlite(element: json_ids, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array({compiler.process(element.clauses, **kw)})"


@compiles(json_ids, "postgresql")
def _json_ids_pg(element: json_ids, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_agg({compiler.process(element.clauses, **kw)})"


def _address(kind: str) -> ColumnElement[Any]:
    return (select(func.min(Identity.value)).where(col(Identity.customer_id) == col(Customer.id),
                                                   col(Identity.kind) == kind).scalar_subquery())


def address_column(channel: str) -> ColumnElement[Any]:
    """The customer's address on a channel (the smallest, when there are several), or NULL."""
    return _address("email" if channel == "email" else "phone")


def _consent(channel: str) -> ColumnElement[Any]:
    query: ColumnElement[Any] = (select(col(Consent.granted)).where(col(Consent.customer_id) == col(Customer.id),
                                               col(Consent.channel) == channel,
                                          col(Consent.purpose) == "marketing")
             .order_by(col(Consent.at).desc(), col(Consent.id).desc()).limit(1).scalar_subquery())
    return query


def _has(kind: str) -> ColumnElement[Any]:
    return exists().where(col(Identity.customer_id) == col(Customer.id), col(Identity.kind) == kind)


def _case(column: Any) -> ColumnElement[Any]:
    return (select(column).where(col(Case.customer_id) == col(Customer.id), col(Case.closed_at).is_(None))
            .order_by(col(Case.opened_at).desc()).limit(1).scalar_subquery())


def _history(kind: str) -> ColumnElement[Any]:
    if kind == "received":
        return (select(json_ids(cast(CampaignRecipient.campaign_id, String)))
                .where(col(CampaignRecipient.customer_id) == col(Customer.id), col(CampaignRecipient.status) == "sent")
                .scalar_subquery())
    return (select(json_ids(cast(CampaignEvent.campaign_id, String)))
            .join(CampaignRecipient, col(CampaignRecipient.id) == col(CampaignEvent.recipient_id))
            .where(col(CampaignRecipient.customer_id) == col(Customer.id), col(CampaignEvent.kind) == kind)
            .scalar_subquery())


def segment_columns() -> dict[str, ColumnElement[Any] | SqlField]:
    """What compile_sql needs: every segment field as a Customer column or correlated subquery."""
    open_complaints = (select(func.count(col(Complaint.id)))
                       .where(and_(col(Complaint.customer_id) == col(Customer.id),
                                   col(Complaint.status).not_in(_CLOSED_COMPLAINTS)))
                       .scalar_subquery())
    columns: dict[str, Any] = {
        "customer.id": col(Customer.id),
        "customer.lifecycle_stage": col(Customer.lifecycle_stage),
        "customer.tags": SqlField(typing_cast(ColumnElement[Any], Customer.tags), "json_list"),
        "customer.attributes": SqlField(typing_cast(ColumnElement[Any], Customer.attributes), "json_object"),
        "customer.language": col(Customer.language),
        "customer.timezone": col(Customer.timezone),
        "customer.last_contact_at": col(Customer.last_contact_at),
        "customer.open_complaints": open_complaints,
        "customer.has_email": _has("email"),
        "customer.has_phone": _has("phone"),
        "consent.email": _consent("email"),
        "consent.sms": _consent("sms"),
        "case.state": _case(Case.state),
        "case.workflow": _case(Case.workflow),
        "campaign.received": SqlField(_history("received"), "json_list"),
        "campaign.opened": SqlField(_history("opened"), "json_list"),
        "campaign.clicked": SqlField(_history("clicked"), "json_list"),
    }
    return columns


__all__ = ["SEGMENT_FIELDS", "address_column", "segment_columns"]

"""Segments: a condition compiled to SQL over customers, counted, previewed and walked by keyset."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from hub.campaigns.fields import SEGMENT_FIELDS, address_column, segment_columns
from hub.core import customers as customer_store
from hub.core.envelopes import AddressKind
from hub.core.identity import InvalidAddress, normalise
from hub.routing.conditions import compile_sql, validate
from hub.store.models import Customer, Segment
from hub.store.types import utcnow

LIST_TAG_PREFIX = "list:"


def where(condition: Mapping[str, Any], now: datetime | None = None) -> ColumnElement[bool]:
    """The WHERE clause of a segment condition; ConditionError names the bad node's JSON path."""
    tree = validate(dict(condition), fields=SEGMENT_FIELDS) if condition else validate({"all": []})
    return compile_sql(tree, segment_columns(), now=now or utcnow())


def members(condition: Mapping[str, Any], channel: str, now: datetime | None = None) -> Select[Any]:
    """Live customers matching the segment who can be reached on `channel`, ordered by id."""
    address = address_column(channel).label("address")
    return (select(col(Customer.id), address, col(Customer.timezone))
            .where(where(condition, now), col(Customer.merged_into_id).is_(None), address_column(channel).is_not(None))
            .order_by(col(Customer.id)))


async def count(session: AsyncSession, condition: Mapping[str, Any], channel: str | None = None) -> int:
    """How many customers the segment holds now (reachable on `channel` when given)."""
    query = select(func.count()).select_from(Customer).where(where(condition), col(Customer.merged_into_id).is_(None))
    if channel is not None:
        query = query.where(address_column(channel).is_not(None))
    return int((await session.execute(query)).scalar_one())


async def preview(session: AsyncSession, condition: Mapping[str, Any], channel: str,
                  limit: int = 20) -> list[dict[str, Any]]:
    """The first recipients, as the campaign would address them."""
    rows = await session.execute(
        members(condition, channel).add_columns(col(Customer.display_name), col(Customer.language)).limit(limit)
    )
    return [{"customer_id": r.id, "address": r.address, "name": r.display_name, "language": r.language,
             "timezone": r.timezone} for r in rows]


async def batch(session: AsyncSession, condition: Mapping[str, Any], channel: str, *, after: int, size: int,
                now: datetime | None = None) -> list[tuple[int, str, str]]:
    """The next keyset batch: (customer id, address, timezone) with id > after."""
    rows = await session.execute(members(condition, channel, now).where(col(Customer.id) > after).limit(size))
    return [(int(r.id), str(r.address), str(r.timezone)) for r in rows]


# --- static lists from CSV ------------------------------------------------------------------


@dataclass
class ImportReport:
    """What a CSV import did; every problem names the file and line."""

    segment: str
    imported: int = 0
    created: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"segment": self.segment, "imported": self.imported, "created": self.created, "errors": self.errors}


def list_condition(name: str) -> dict[str, Any]:
    """A static list is a tag on its members, so it is one more condition like any other."""
    return {"field": "customer.tags", "op": "contains", "value": LIST_TAG_PREFIX + name}


def _address_of(row: Mapping[str, str], region: str) -> tuple[AddressKind, str]:
    email, phone = (row.get("email") or "").strip(), (row.get("phone") or "").strip()
    if email:
        return AddressKind.EMAIL, email
    if phone:
        return AddressKind.PHONE, phone
    raise InvalidAddress("needs an email or a phone column value")


async def _import_row(session: AsyncSession, row: Mapping[str, str], tag: str, region: str) -> bool:
    kind, raw = _address_of(row, region)
    address = normalise(kind, raw, region, name=(row.get("name") or "").strip() or None)
    customer, created = await customer_store.resolve(session, address)
    if tag not in customer.tags:
        customer.tags = [*customer.tags, tag]
    for key in ("language", "timezone"):
        if (value := (row.get(key) or "").strip()) and created:
            setattr(customer, key, value)
    return created


async def import_csv(session: AsyncSession, name: str, data: str, *, filename: str = "upload.csv",
                     region: str = "IT") -> ImportReport:
    """Tag every valid row's customer (creating unknown ones) and make the list a segment."""
    report = ImportReport(segment=name)
    reader = csv.DictReader(io.StringIO(data))
    headers = {h.strip().lower() for h in (reader.fieldnames or [])}
    if not headers & {"email", "phone"}:
        report.errors.append(f"{filename}:1: the header needs an email or phone column")
        return report
    tag = LIST_TAG_PREFIX + name
    for row in reader:
        clean = {(k or "").strip().lower(): (v or "") for k, v in row.items() if isinstance(v, str)}
        try:
            async with session.begin_nested():
                created = await _import_row(session, clean, tag, region)
        except InvalidAddress as exc:
            report.errors.append(f"{filename}:{reader.line_num}: {exc}")
            continue
        report.imported += 1
        report.created += int(created)
    await _ensure_segment(session, name, list_condition(name))
    return report


async def _ensure_segment(session: AsyncSession, name: str, condition: dict[str, Any]) -> Segment:
    found = (await session.execute(select(Segment).where(col(Segment.name) == name))).scalar_one_or_none()
    if found is None:
        found = Segment(name=name, condition=condition)
        session.add(found)
        await session.flush()
    return found

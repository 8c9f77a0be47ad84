"""Import stays and purchases from CSV: validated row by row, idempotent on `external_id`.

Columns: external_id, date (YYYY-MM-DD), amount (e.g. 120.50), and one of customer_id, email or
phone to say whose it is; optional: product (default room), kind (stay | order), nights, name.
Unknown emails and phones become new customers, as they would if those guests had written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.core import customers
from hub.core.envelopes import Address, AddressKind
from hub.core.identity import InvalidAddress, identity_key, normalise
from hub.store.models import Customer, Stay, table
from hub.store.types import utcnow

REQUIRED = ("external_id", "date", "amount")
WHO = ("customer_id", "email", "phone")
KINDS = ("stay", "order")
BATCH = 500
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: where it is and what is wrong with it."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class ImportReport:
    """What an import did: rows read, inserted, already present, and the rejected ones."""

    file: str
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "read": self.read, "inserted": self.inserted, "duplicates": self.duplicates,
                "errors": [{"line": e.line, "message": e.message} for e in self.errors]}


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    external_id: str
    day: date
    amount_cents: int
    product: str
    kind: str
    nights: int
    customer_id: int | None
    address: Address | None


class _Invalid(ValueError):
    pass


def _cents(text: str) -> int:
    try:
        amount = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise _Invalid(f"amount {text!r} is not a number") from None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise _Invalid(f"amount {text!r} needs at most two decimals")
    return int(amount * 100)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _Invalid(f"date {text!r} is not YYYY-MM-DD") from None


def _who(raw: Mapping[str, str]) -> tuple[int | None, Address | None]:
    if cid := raw.get("customer_id", "").strip():
        if not cid.isdigit():
            raise _Invalid(f"customer_id {cid!r} is not a number")
        return int(cid), None
    name = raw.get("name", "").strip() or None
    for kind in (AddressKind.EMAIL, AddressKind.PHONE):
        if value := raw.get(kind.value, "").strip():
            try:
                return None, normalise(kind, value, name=name)
            except InvalidAddress as exc:
                raise _Invalid(f"{kind.value} {value!r}: {exc}") from None
    raise _Invalid("no customer_id, email or phone")


def _parse(line: int, raw: Mapping[str, str]) -> _Row:
    for name in REQUIRED:
        if not (raw.get(name) or "").strip():
            raise _Invalid(f"{name} is empty")
    kind = (raw.get("kind") or "stay").strip()
    if kind not in KINDS:
        raise _Invalid(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    nights_text = (raw.get("nights") or "0").strip()
    if not nights_text.isdigit():
        raise _Invalid(f"nights {nights_text!r} is not a whole number")
    customer_id, address = _who(raw)
    return _Row(line, raw["external_id"].strip()[:200], _day(raw["date"]), _cents(raw["amount"]),
                (raw.get("product") or "room").strip()[:200] or "room", kind, int(nights_text), customer_id, address)


def read_rows(name: str, text: str, report: ImportReport) -> list[_Row]:
    """Parse and check every row, collecting errors with their line numbers; duplicates in the file count once."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [h for h in REQUIRED if h not in header]
    if missing or not any(h in header for h in WHO):
        need = missing or [" or ".join(WHO)]
        report.errors.append(RowError(name, 1, f"missing column(s): {', '.join(need)}"))
        return []
    reader.fieldnames = header
    rows: dict[str, _Row] = {}
    for raw in reader:
        report.read += 1
        try:
            row = _parse(reader.line_num, {k: v or "" for k, v in raw.items() if isinstance(k, str)})
        except _Invalid as exc:
            report.errors.append(RowError(name, reader.line_num, str(exc)))
            continue
        if row.external_id in rows:
            report.duplicates += 1
            continue
        rows[row.external_id] = row
    return list(rows.values())


async def import_text(session: AsyncSession, name: str, text: str, *, strict: bool = False) -> ImportReport:
    """Import CSV text already read; `name` is what the report calls the file."""
    report = ImportReport(name)
    rows = read_rows(name, text, report)
    if strict and report.errors:
        return report
    rows = await _known_customers(session, name, rows, report)
    if strict and report.errors:
        return report
    fresh = await _not_yet_imported(session, rows)
    report.duplicates += len(rows) - len(fresh)
    await _insert(session, fresh)
    report.inserted = len(fresh)
    return report


async def _known_customers(session: AsyncSession, name: str, rows: list[_Row], report: ImportReport) -> list[_Row]:
    """Rows whose customer exists (by id) or can be found or created (by address)."""
    ids = {r.customer_id for r in rows if r.customer_id is not None}
    existing: set[int] = set()
    for chunk in _chunks(sorted(ids)):
        found = await session.execute(select(col(Customer.id)).where(col(Customer.id).in_(chunk)))
        existing.update(int(i) for i in found.scalars() if i is not None)
    addresses = [r.address for r in rows if r.address is not None]
    by_key = await customers.resolve_many(session, addresses) if addresses else {}
    kept = []
    for row in rows:
        if row.customer_id is not None and row.customer_id not in existing:
            report.errors.append(RowError(name, row.line, f"no customer {row.customer_id}"))
            continue
        cid = row.customer_id if row.address is None else by_key[identity_key(row.address)]
        kept.append(_Row(row.line, row.external_id, row.day, row.amount_cents, row.product, row.kind, row.nights,
                         cid, None))
    return kept


async def _not_yet_imported(session: AsyncSession, rows: list[_Row]) -> list[_Row]:
    seen: set[str] = set()
    for chunk in _chunks([r.external_id for r in rows]):
        found = await session.execute(select(col(Stay.external_id)).where(col(Stay.external_id).in_(chunk)))
        seen.update(found.scalars())
    return [r for r in rows if r.external_id not in seen]


async def _insert(session: AsyncSession, rows: list[_Row]) -> None:
    """Insert in batches; ON CONFLICT DO NOTHING settles a concurrent import of the same file."""
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert if dialect == "sqlite" else None
    now = utcnow()
    for chunk in _chunks(rows):
        values = [{"customer_id": r.customer_id, "external_id": r.external_id, "kind": r.kind, "product": r.product,
                   "amount_cents": r.amount_cents, "stay_date": r.day, "nights": r.nights, "source": "csv",
                   "imported_at": now} for r in chunk]
        statement = (builder(table(Stay)).on_conflict_do_nothing(index_elements=["external_id"])
                     if builder is not None else insert(table(Stay)))
        await session.execute(statement, values)


def _chunks(items: Iterable[T]) -> list[list[T]]:
    listed = list(items)
    return [listed[i:i + BATCH] for i in range(0, len(listed), BATCH)]

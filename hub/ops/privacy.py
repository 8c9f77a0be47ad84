"""GDPR: export everything held about a customer, erase it, apply retention, read the consent ledger.

Erasure keeps the shape of the data and drops its content: message, call and timeline rows stay
as content-free stubs (direction, channel, time, delivery status), so reports and campaign
statistics still add up, while every address, name, text, raw copy and attachment goes.
Identities are deleted, which frees the address: a later message starts a new customer.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from sqlalchemy import JSON, LargeBinary, String, Table, cast, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from hub.core.blobs import BlobStore, FileBlobStore
from hub.runtime import Runtime
from hub.store.models import (
    Attachment,
    AuditEvent,
    CallLog,
    CampaignEvent,
    CampaignRecipient,
    Case,
    CaseTransition,
    Complaint,
    Consent,
    Conversation,
    Customer,
    DomainEvent,
    Identity,
    Intervention,
    Message,
    OutboxItem,
    QuarantineItem,
    RawInput,
    Suppression,
    TimelineEntry,
    table,
)
from hub.store.types import utcnow

ERASED = "[erased]"
EXPORT_VERSION = 1
SCAN_BATCH = 500
# Tables whose rows are not tied to a customer by a column, yet may quote one (payloads, raw input,
# tracebacks): after an erase they are swept for the customer's addresses and texts.
SIDE_TABLES = (OutboxItem, QuarantineItem, AuditEvent, DomainEvent, CampaignEvent)


class NotFound(LookupError):
    """No customer with that id."""


@dataclass
class Subject:
    """The rows that make up one person: the customer, the customers merged into it, and their keys."""

    customer_ids: list[int]
    identities: list[tuple[str, str]] = field(default_factory=list)
    message_ids: list[int] = field(default_factory=list)
    raw_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def needles(self) -> list[str]:
        """Strings that must not survive an erase, with the encodings raw forms use."""
        found: set[str] = set()
        for _kind, value in self.identities:
            found |= {value, quote_plus(value), quote(value, safe=""), value.lstrip("+")}
        found |= {t for t in self.texts if len(t) >= 8} | {n for n in self.names if len(n) >= 4}
        return sorted((n for n in found if len(n) >= 4), key=len, reverse=True)


async def _merged_ids(session: AsyncSession, customer_id: int) -> list[int]:
    """The customer and every customer merged into it (transitively): one person, several rows."""
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    ids, frontier = [customer_id], [customer_id]
    while frontier:
        rows = await session.execute(select(col(Customer.id)).where(col(Customer.merged_into_id).in_(frontier)))
        frontier = [i for i in rows.scalars().all() if i is not None and i not in ids]
        ids += frontier
    return ids


async def load_subject(session: AsyncSession, customer_id: int) -> Subject:
    """Collect the ids and strings that identify one customer."""
    subject = Subject(await _merged_ids(session, customer_id))
    ids = subject.customer_ids
    subject.identities = [(k, v) for k, v in (await session.execute(
        select(col(Identity.kind), col(Identity.value)).where(col(Identity.customer_id).in_(ids)))).all()]
    rows = (await session.execute(
        select(col(Message.id), col(Message.raw_id), col(Message.body_text), col(Message.subject))
        .where(col(Message.customer_id).in_(ids)))).all()
    subject.message_ids = [r[0] for r in rows if r[0] is not None]
    subject.raw_ids = [r[1] for r in rows if r[1] is not None]
    subject.texts = [t for r in rows for t in (r[2], r[3]) if t]
    subject.names = [n for n in (await session.execute(
        select(col(Customer.display_name)).where(col(Customer.id).in_(ids)))).scalars().all() if n]
    return subject


# --- export ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    return value


def _rows(result: Iterable[Any], skip: Sequence[str] = ()) -> list[dict[str, Any]]:
    return [{k: _jsonable(v) for k, v in row._mapping.items() if k not in skip} for row in result]


def _customer_tables() -> list[Table]:
    """Every table with a customer_id column: new tables are exported without touching this module."""
    return [t for t in SQLModel.metadata.sorted_tables if "customer_id" in t.c]


async def _select(session: AsyncSession, tbl: Table, column: str, values: Sequence[Any]) -> list[Any]:
    if not values:
        return []
    return list((await session.execute(select(tbl).where(tbl.c[column].in_(values)))).all())


async def _linked(session: AsyncSession, subject: Subject, data: dict[str, Any]) -> None:
    """Rows tied to the customer through another table: attachments, cases, campaign events, audit."""
    ids = subject.customer_ids
    data["customer"] = _rows(await _select(session, table(Customer), "id", ids))
    data["attachment"] = _rows(await _select(session, table(Attachment), "message_id", subject.message_ids))
    case_ids = [r["id"] for r in data.get("case", [])]
    data["casetransition"] = _rows(await _select(session, table(CaseTransition), "case_id", case_ids))
    recipient_ids = [r["id"] for r in data.get("campaignrecipient", [])]
    data["campaignevent"] = _rows(await _select(session, table(CampaignEvent), "recipient_id", recipient_ids))
    data["suppression"] = _rows(await _select(session, table(Suppression), "address",
                                              [v for _, v in subject.identities]))
    audit = table(AuditEvent)
    data["auditevent"] = _rows((await session.execute(
        select(audit).where(audit.c.entity == "customer", audit.c.entity_id.in_(ids)))).all())


async def export_data(session: AsyncSession, customer_id: int) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The customer's data as JSON-ready tables, plus attachment and raw rows for the zip's files."""
    subject = await load_subject(session, customer_id)
    data: dict[str, Any] = {}
    for tbl in _customer_tables():
        data[tbl.name] = _rows(await _select(session, tbl, "customer_id", subject.customer_ids))
    await _linked(session, subject, data)
    raws = await _select(session, table(RawInput), "id", subject.raw_ids)
    data["rawinput"] = _rows(raws, skip=("data",))
    data["consent_ledger"] = await consent_ledger(session, customer_id)
    return data, data["attachment"], raws


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120] or "file"


async def export_customer(runtime: Runtime, customer_id: int) -> bytes:
    """A zip: customer.json (every row about the customer), attachments/ and raw/ (the bytes as received)."""
    async with runtime.factory() as session:
        data, attachments, raws = await export_data(session, customer_id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for att in attachments:
            ref = att.get("storage_ref")
            if ref:
                try:
                    zf.writestr(f"attachments/{att['id']}-{_safe_name(att['filename'])}", runtime.jobs.blobs.get(ref))
                except (KeyError, FileNotFoundError):
                    att["missing_file"] = True
        for raw in raws:
            ext = "eml" if raw.content_type == "message/rfc822" else "txt"
            zf.writestr(f"raw/{raw.id}.{ext}", raw.data)
        meta = {"format": "hub-gdpr-export", "version": EXPORT_VERSION, "customer_id": customer_id,
                "exported_at": utcnow().isoformat()}
        zf.writestr("customer.json", json.dumps({**meta, "tables": data}, indent=2, ensure_ascii=False))
    return buffer.getvalue()


async def consent_ledger(session: AsyncSession, customer_id: int) -> dict[str, Any]:
    """Every consent change for the customer, oldest first, and what is in force per channel and purpose."""
    rows = (await session.execute(
        select(Consent).where(col(Consent.customer_id) == customer_id).order_by(col(Consent.at), col(Consent.id))
    )).scalars().all()
    history = [{"channel": r.channel, "purpose": r.purpose, "granted": r.granted, "source": r.source,
                "detail": r.detail, "at": r.at.isoformat()} for r in rows]
    current = {f"{h['channel']}/{h['purpose']}": h["granted"] for h in history}  # the last row wins
    return {"customer_id": customer_id, "current": current, "history": history}


# --- erase ----------------------------------------------------------------------------------


@dataclass
class EraseReport:
    customer_id: int
    counts: dict[str, int] = field(default_factory=dict)
    blobs_deleted: int = 0


def _count(report: EraseReport, name: str, result: Any) -> None:
    report.counts[name] = report.counts.get(name, 0) + int(result.rowcount or 0)


async def scrub_messages(session: AsyncSession, message_ids: Sequence[int], report: EraseReport) -> list[str]:
    """Empty the messages' content, drop their attachments and raw copies; returns the freed blob refs."""
    if not message_ids:
        return []
    atts = (await session.execute(select(col(Attachment.storage_ref)).where(
        col(Attachment.message_id).in_(message_ids)))).scalars().all()
    raw_ids = [r for r in (await session.execute(select(col(Message.raw_id)).where(
        col(Message.id).in_(message_ids)))).scalars().all() if r is not None]
    _count(report, "attachment", await session.execute(
        delete(Attachment).where(col(Attachment.message_id).in_(message_ids))))
    _count(report, "message", await session.execute(
        update(Message).where(col(Message.id).in_(message_ids)).values(
            body_text="", body_html=None, visible_text=None, subject=None, sender="", recipient="", headers={},
            thread_refs=[], delivery_detail=None, provider_id=None, raw_id=None,
            external_id="erased:" + cast(col(Message.id), String))
        .execution_options(synchronize_session=False)))
    if raw_ids:
        _count(report, "rawinput", await session.execute(delete(RawInput).where(col(RawInput.id).in_(raw_ids))))
    await session.execute(
        update(TimelineEntry).where(col(TimelineEntry.kind) == "message", col(TimelineEntry.ref_id).in_(message_ids))
        .values(summary="", data={}).execution_options(synchronize_session=False))
    return [r for r in atts if r]


async def _scrub_customer_rows(session: AsyncSession, ids: list[int], report: EraseReport) -> None:
    """Content of every customer-keyed row; keys, times, states and amounts stay for the aggregates."""
    changes: list[tuple[Any, Any, dict[str, Any]]] = [
        (Customer, col(Customer.id).in_(ids), {"display_name": "", "tags": [], "attributes": {
            "erased_at": utcnow().isoformat()}}),
        (Conversation, col(Conversation.customer_id).in_(ids), {"subject": None, "tags": []}),
        (TimelineEntry, col(TimelineEntry.customer_id).in_(ids), {"summary": "", "data": {}}),
        (CallLog, col(CallLog.customer_id).in_(ids), {"from_number": "", "to_number": "", "recording_url": None}),
        (Consent, col(Consent.customer_id).in_(ids), {"detail": None}),
        (Complaint, col(Complaint.customer_id).in_(ids), {"title": ERASED, "resolution": None}),
        (Intervention, col(Intervention.customer_id).in_(ids), {"description": ERASED, "notes": []}),
        (Case, col(Case.customer_id).in_(ids), {"data": {}}),
        (CampaignRecipient, col(CampaignRecipient.customer_id).in_(ids), {"address": "", "error": None}),
        (DomainEvent, col(DomainEvent.customer_id).in_(ids), {"payload": {}}),
    ]
    for model, where, values in changes:
        _count(report, model.__tablename__, await session.execute(
            update(model).where(where).values(**values).execution_options(synchronize_session=False)))
    case_ids = select(col(Case.id)).where(col(Case.customer_id).in_(ids))
    await session.execute(update(CaseTransition).where(col(CaseTransition.case_id).in_(case_ids))
                          .values(reason=None).execution_options(synchronize_session=False))
    # Complaints opened on a message keep pointing at its (now empty) stub: nothing to unlink.


def _replace_all(value: str, needles: Sequence[str]) -> str:
    lowered = value.lower()
    for needle in needles:
        if needle.lower() in lowered:
            start = lowered.find(needle.lower())
            while start != -1:
                value = value[:start] + ERASED + value[start + len(needle):]
                lowered = value.lower()
                start = lowered.find(needle.lower(), start + len(ERASED))
    return value


def scrub_value(value: Any, needles: Sequence[str]) -> Any:
    """The value with every needle replaced, inside strings, JSON and bytes (bytes holding one become None)."""
    if isinstance(value, str):
        return _replace_all(value, needles)
    if isinstance(value, dict):
        return {k: scrub_value(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, needles) for v in value]
    if isinstance(value, bytes):
        low = value.lower()
        return None if any(n.lower().encode() in low for n in needles) else value
    return value


def _content_columns(tbl: Table) -> list[Any]:
    """Text, JSON and binary columns: where a quoted address or message can hide."""
    return [c for c in tbl.c if isinstance(c.type, String | LargeBinary | JSON)]


async def _sweep_table(session: AsyncSession, tbl: Table, needles: Sequence[str], report: EraseReport) -> None:
    """Keyset walk of a side table, rewriting the rows that quote the customer."""
    columns, last = _content_columns(tbl), 0
    while True:
        rows = (await session.execute(select(tbl.c.id, *columns).where(tbl.c.id > last)
                                      .order_by(tbl.c.id).limit(SCAN_BATCH))).all()
        if not rows:
            return
        for row in rows:
            values = {c.name: row._mapping[c.name] for c in columns}
            changed = {k: new for k, v in values.items() if (new := scrub_value(v, needles)) != v}
            if changed:
                await session.execute(update(tbl).where(tbl.c.id == row.id).values(**changed))
                report.counts[f"{tbl.name}.swept"] = report.counts.get(f"{tbl.name}.swept", 0) + 1
        last = rows[-1].id


def delete_unused_blobs(blobs: BlobStore, refs: Iterable[str], still_used: set[str]) -> int:
    """Remove blob files no remaining attachment points at (content-addressed: another message may share one)."""
    if not isinstance(blobs, FileBlobStore):
        return 0
    deleted = 0
    for ref in set(refs) - still_used:
        if ref.startswith("sha256:"):
            digest = ref[7:]
            path = Path(blobs.root) / digest[:2] / digest
            if path.exists():
                path.unlink()
                deleted += 1
    return deleted


async def _still_used(session: AsyncSession, refs: Sequence[str]) -> set[str]:
    if not refs:
        return set()
    rows = await session.execute(select(col(Attachment.storage_ref)).where(col(Attachment.storage_ref).in_(refs)))
    return {r for r in rows.scalars().all() if r}


async def _secure_delete(session: AsyncSession) -> None:
    # SQLite keeps deleted bytes in free pages unless told to overwrite them.
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("PRAGMA secure_delete = ON"))


async def erase_customer(runtime: Runtime, customer_id: int, *, actor: str, reason: str = "") -> EraseReport:
    """Erase a customer (and the customers merged into it) in one transaction, audited without personal data."""
    report = EraseReport(customer_id)
    async with runtime.factory() as session, session.begin():
        await _secure_delete(session)
        subject = await load_subject(session, customer_id)
        needles = subject.needles()
        refs = await scrub_messages(session, subject.message_ids, report)
        await _scrub_customer_rows(session, subject.customer_ids, report)
        values = [v for _, v in subject.identities]
        _count(report, "identity", await session.execute(
            delete(Identity).where(col(Identity.customer_id).in_(subject.customer_ids))))
        if values:
            _count(report, "suppression", await session.execute(
                delete(Suppression).where(col(Suppression.address).in_(values))))
        for model in SIDE_TABLES:
            await _sweep_table(session, table(model), needles, report)
        used = await _still_used(session, refs)
        session.add(AuditEvent(actor=actor, action="customer.erased", entity="customer", entity_id=customer_id,
                               data={"merged_ids": subject.customer_ids, "counts": dict(report.counts),
                                     "reason_sha256": hashlib.sha256(reason.encode()).hexdigest() if reason else None}))
    report.blobs_deleted = delete_unused_blobs(runtime.jobs.blobs, refs, used)
    return report


# --- retention ------------------------------------------------------------------------------


async def _expire_raw(session: AsyncSession, cutoff: datetime) -> int:
    """Raw copies older than the cutoff, except those a queued ingest job still needs."""
    live = (await session.execute(select(col(OutboxItem.payload)).where(
        col(OutboxItem.status).in_(("queued", "running"))))).scalars().all()
    keep = {int(p["raw_id"]) for p in live if isinstance(p, dict) and isinstance(p.get("raw_id"), int)}
    old = [i for i in (await session.execute(select(col(RawInput.id)).where(
        col(RawInput.received_at) < cutoff).limit(5000))).scalars().all() if i is not None and i not in keep]
    if not old:
        return 0
    await session.execute(update(Message).where(col(Message.raw_id).in_(old)).values(raw_id=None)
                          .execution_options(synchronize_session=False))
    result = await session.execute(delete(RawInput).where(col(RawInput.id).in_(old)))
    await session.execute(update(QuarantineItem).where(
        col(QuarantineItem.replayed_at).is_not(None), col(QuarantineItem.created_at) < cutoff).values(raw=None))
    return int(getattr(result, "rowcount", 0) or 0)


async def _expire_closed(session: AsyncSession, cutoff: datetime, report: EraseReport) -> list[str]:
    """Empty one batch of messages of resolved conversations whose last message is older than the cutoff."""
    message_ids = [m for m in (await session.execute(
        select(col(Message.id)).join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(col(Conversation.status) == "resolved", col(Conversation.last_message_at) < cutoff,
               col(Message.sender) != "")  # an emptied message has no sender: done already
        .limit(SCAN_BATCH))).scalars().all() if m is not None]
    return await scrub_messages(session, message_ids, report)


async def _closed_batches(runtime: Runtime, cutoff: datetime, report: EraseReport, max_batches: int = 200) -> None:
    """Batches of SCAN_BATCH messages, each in its own transaction, until none is left (or the cap)."""
    for _ in range(max_batches):
        before = report.counts.get("message", 0)
        async with runtime.factory() as session, session.begin():
            await _secure_delete(session)
            refs = await _expire_closed(session, cutoff, report)
            used = await _still_used(session, refs)
        report.blobs_deleted += delete_unused_blobs(runtime.jobs.blobs, refs, used)
        if report.counts.get("message", 0) == before:
            return


async def apply_retention(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """Drop raw input past HUB_RETENTION_RAW_DAYS; empty resolved conversations past HUB_RETENTION_CLOSED_YEARS."""
    settings, now = runtime.settings, now or utcnow()
    report = EraseReport(0)
    if settings.retention_raw_days:
        async with runtime.factory() as session, session.begin():
            await _secure_delete(session)
            report.counts["raw_expired"] = await _expire_raw(session, now - timedelta(days=settings.retention_raw_days))
    if settings.retention_closed_years:
        await _closed_batches(runtime, now - timedelta(days=365 * settings.retention_closed_years), report)
    counts = {**report.counts, "blobs_deleted": report.blobs_deleted}
    if any(counts.values()):
        async with runtime.factory() as session, session.begin():
            session.add(AuditEvent(actor="retention", action="retention.applied", entity="system", data=counts))
    return counts

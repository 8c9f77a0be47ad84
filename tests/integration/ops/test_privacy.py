"""GDPR on SQLite and PostgreSQL: export as a zip, erase leaving no trace in any column, retention, consents."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, select
from sqlmodel import SQLModel, col

from hub.channels.sms import consent
from hub.core import customers
from hub.core.calls import log_call
from hub.core.envelopes import AttachmentRef
from hub.core.ingest import ingest_once, quarantine
from hub.ops import privacy
from hub.runtime import Runtime
from hub.store.models import AuditEvent, Conversation, Customer, Message, RawInput, TimelineEntry
from hub.store.types import utcnow
from tests.support.builders import call, email, sms

GUEST_MAIL = "giulia.rossi@example.com"
GUEST_PHONE = "+393471234567"
MAIL_TEXT = "The shower in room 412 leaks all night long"
SMS_TEXT = "Arrivo alle 22, lasciate la chiave in portineria"
SHARED = b"%PDF-1.4 shared booking conditions"
PRIVATE = b"%PDF-1.4 passport scan of Giulia"
OTHER_TEXT = "Marco asks for a late checkout"


def _attachment(name: str, data: bytes) -> AttachmentRef:
    return AttachmentRef(name, "application/pdf", len(data), hashlib.sha256(data).hexdigest(), data)


async def seed(rt: Runtime) -> tuple[int, int]:
    """Giulia writes by email (two attachments) and SMS, calls, opts out; Marco shares one attachment."""
    ctx = rt.ingest_context
    mail = replace(email("<g1@example.com>", GUEST_MAIL, subject="Leak in 412", body=MAIL_TEXT,
                         raw=f"From: {GUEST_MAIL}\r\nSubject: Leak\r\n\r\n{MAIL_TEXT}".encode()),
                   attachments=(_attachment("conditions.pdf", SHARED), _attachment("passport.pdf", PRIVATE)))
    by_mail = await ingest_once(rt.factory, mail, ctx)
    text = replace(sms("SMgdpr1", GUEST_PHONE, body=SMS_TEXT),
                   raw=f"From=%2B393471234567&Body={SMS_TEXT.replace(' ', '+')}".encode())
    by_sms = await ingest_once(rt.factory, text, ctx)
    other = replace(email("<m1@example.com>", "marco@example.com", body=OTHER_TEXT),
                    attachments=(_attachment("conditions.pdf", SHARED),))
    marco = await ingest_once(rt.factory, other, ctx)
    assert by_mail.customer_id and by_sms.customer_id and marco.customer_id
    async with rt.factory() as session, session.begin():
        await customers.merge(session, by_sms.customer_id, by_mail.customer_id, actor="agent@hotel.test")
        await log_call(session, call("CAgdpr1", GUEST_PHONE))
        await consent.opt_out(session, customer_id=by_mail.customer_id, channel="sms", address=GUEST_PHONE,
                              source="sms_keyword", detail=f"STOP from {GUEST_PHONE}")
    await quarantine(rt.factory, stage="email.parse", error=ValueError("bad charset"), channel="email",
                     raw=f"From: {GUEST_MAIL}\r\n\r\n{MAIL_TEXT}".encode(), source="imap:INBOX")
    return by_mail.customer_id, marco.customer_id


def _text_of(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def scan(rt: Runtime, needles: list[str]) -> list[str]:
    """Every text, JSON and binary column of every table, searched for the needles."""
    hits = []
    async with rt.factory() as session:
        for tbl in SQLModel.metadata.sorted_tables:
            columns = [c for c in tbl.c if isinstance(c.type, String | LargeBinary | JSON)]
            if not columns:
                continue
            for row in (await session.execute(select(*columns))).all():
                for column, value in zip(columns, row, strict=True):
                    text = _text_of(value).lower() if value is not None else ""
                    hits += [f"{tbl.name}.{column.name}: {n}" for n in needles if n.lower() in text]
    return hits


NEEDLES = [GUEST_MAIL, GUEST_PHONE, "393471234567", MAIL_TEXT, SMS_TEXT, "Leak in 412", "Giulia"]


async def test_export_is_a_zip_of_everything_about_the_customer(runtime: Runtime) -> None:
    giulia, _marco = await seed(runtime)
    data = await privacy.export_customer(runtime, giulia)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        doc = json.loads(zf.read("customer.json"))
        files = {n: zf.read(n) for n in names if n.startswith(("attachments/", "raw/"))}
    tables = doc["tables"]
    assert doc["format"] == "hub-gdpr-export" and doc["customer_id"] == giulia
    assert {i["value"] for i in tables["identity"]} == {GUEST_MAIL, GUEST_PHONE}  # merged customer included
    assert {m["body_text"] for m in tables["message"]} == {MAIL_TEXT, SMS_TEXT}
    assert len(tables["calllog"]) == 1 and len(tables["attachment"]) == 2
    assert tables["consent_ledger"]["current"] == {"sms/marketing": False}
    assert sorted(files[n] for n in files if n.startswith("attachments/")) == sorted([SHARED, PRIVATE])
    assert any(MAIL_TEXT.encode() in body for n, body in files.items() if n.startswith("raw/"))
    assert OTHER_TEXT not in json.dumps(doc)


async def test_erase_leaves_no_personal_data_in_any_column(runtime: Runtime) -> None:
    giulia, marco = await seed(runtime)
    assert await scan(runtime, NEEDLES[:5])  # the scan does find them before
    blobs = runtime.jobs.blobs
    private_ref = blobs.put(PRIVATE)
    shared_ref = blobs.put(SHARED)

    report = await privacy.erase_customer(runtime, giulia, actor="dpo@hotel.test", reason="art. 17 request")

    assert await scan(runtime, NEEDLES) == []
    assert report.blobs_deleted == 1
    assert blobs.get(shared_ref) == SHARED  # Marco's message still points at the same bytes
    try:
        blobs.get(private_ref)
        raise AssertionError("the private attachment's file survived")
    except FileNotFoundError:
        pass
    async with runtime.factory() as session:
        audit = (await session.execute(select(AuditEvent).where(
            col(AuditEvent.action) == "customer.erased"))).scalar_one()
        kept = (await session.execute(select(Message).where(col(Message.customer_id) == marco))).scalar_one()
        stubs = (await session.execute(select(Message).where(col(Message.customer_id) == giulia))).scalars().all()
    assert (audit.entity_id, audit.actor) == (giulia, "dpo@hotel.test") and audit.data["counts"]["message"] == 2
    assert "art. 17" not in json.dumps(audit.data)
    assert kept.body_text == OTHER_TEXT  # nobody else is touched
    # Aggregates still add up: the rows stay, as content-free stubs with channel, direction and time.
    assert sorted(m.channel for m in stubs) == ["email", "sms"] and all(m.body_text == "" for m in stubs)


async def test_a_new_message_after_erase_starts_a_new_customer(runtime: Runtime) -> None:
    giulia, _ = await seed(runtime)
    await privacy.erase_customer(runtime, giulia, actor="dpo@hotel.test")
    again = await ingest_once(runtime.factory, email("<g2@example.com>", GUEST_MAIL), runtime.ingest_context)
    assert again.customer_id not in (None, giulia)


async def test_retention_drops_old_raw_input_and_empties_old_closed_conversations(runtime: Runtime) -> None:
    giulia, marco = await seed(runtime)
    long_ago = utcnow() - timedelta(days=4 * 365)
    async with runtime.factory() as session, session.begin():
        for row in (await session.execute(select(Conversation).where(
                col(Conversation.customer_id) == marco))).scalars():
            row.status, row.last_message_at = "resolved", long_ago
    rt = replace(runtime, settings=runtime.settings.model_copy(
        update={"retention_raw_days": 30, "retention_closed_years": 3}))
    counts = await privacy.apply_retention(rt, now=utcnow() + timedelta(days=31))
    assert counts["raw_expired"] >= 2 and counts["message"] == 1
    async with runtime.factory() as session:
        assert (await session.execute(select(RawInput))).first() is None
        marco_msg = (await session.execute(select(Message).where(col(Message.customer_id) == marco))).scalar_one()
        giulia_texts = (await session.execute(select(col(Message.body_text)).where(
            col(Message.customer_id) == giulia))).scalars().all()
        timeline = (await session.execute(select(col(TimelineEntry.summary)).where(
            col(TimelineEntry.customer_id) == marco))).scalars().all()
        audit = (await session.execute(select(AuditEvent).where(
            col(AuditEvent.action) == "retention.applied"))).scalar_one()
        customer = await session.get(Customer, marco)
    assert marco_msg.body_text == "" and set(giulia_texts) == {MAIL_TEXT, SMS_TEXT}  # open ones are kept
    assert timeline == [""] and audit.data["message"] == 1 and customer is not None


async def test_consent_ledger_lists_changes_and_the_state_in_force(runtime: Runtime) -> None:
    giulia, _ = await seed(runtime)
    async with runtime.factory() as session, session.begin():
        await consent.opt_in(session, customer_id=giulia, channel="sms", address=GUEST_PHONE, source="sms_keyword",
                             at=utcnow() + timedelta(seconds=5))
    async with runtime.factory() as session:
        ledger = await privacy.consent_ledger(session, giulia)
    assert [h["granted"] for h in ledger["history"]] == [False, True]
    assert ledger["current"] == {"sms/marketing": True}

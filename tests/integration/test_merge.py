"""Merging two customers moves everything, deletes nothing and is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from hub.core import customers
from hub.core.calls import log_call
from hub.core.ingest import ingest_once
from hub.runtime import Runtime
from hub.store.models import AuditEvent, CallLog, Customer, Identity, Message, TimelineEntry
from tests.support.builders import call, email, sms


async def test_merge_moves_identities_timeline_and_calls_and_is_audited(runtime: Runtime) -> None:
    by_mail = await ingest_once(runtime.factory, email("m@x", "giulia@example.com"), runtime.ingest_context)
    by_phone = await ingest_once(runtime.factory, sms("SMm", "+393471112233"), runtime.ingest_context)
    async with runtime.factory() as session, session.begin():
        await log_call(session, call("CAm", "+393471112233"))
    assert by_mail.customer_id and by_phone.customer_id and by_mail.customer_id != by_phone.customer_id
    async with runtime.factory() as session, session.begin():
        await customers.merge(session, by_phone.customer_id, by_mail.customer_id, actor="marco")
    async with runtime.factory() as session:
        owners = set((await session.execute(select(Identity.customer_id))).scalars())
        msg_owners = set((await session.execute(select(Message.customer_id))).scalars())
        call_owner = (await session.execute(select(CallLog.customer_id))).scalar_one()
        timeline_owners = set((await session.execute(select(TimelineEntry.customer_id))).scalars())
        source = await session.get(Customer, by_phone.customer_id)
        audit = (await session.execute(select(AuditEvent).where(AuditEvent.action == "customer.merged"))).scalar_one()
        total = (await session.execute(select(func.count()).select_from(Customer))).scalar_one()
    assert owners == msg_owners == timeline_owners == {by_mail.customer_id} and call_owner == by_mail.customer_id
    assert source is not None and source.merged_into_id == by_mail.customer_id and total == 2
    assert audit.data["source_id"] == by_phone.customer_id and audit.data["moved"]["identity"] == 1
    after = await ingest_once(runtime.factory, sms("SMm2", "+393471112233"), runtime.ingest_context)
    assert after.customer_id == by_mail.customer_id


async def test_merged_away_customer_cannot_be_merged_again(runtime: Runtime) -> None:
    a = await ingest_once(runtime.factory, email("a@x", "a@example.com"), runtime.ingest_context)
    b = await ingest_once(runtime.factory, email("b@x", "b@example.com"), runtime.ingest_context)
    assert a.customer_id and b.customer_id
    async with runtime.factory() as session, session.begin():
        await customers.merge(session, b.customer_id, a.customer_id, actor="marco")
    async with runtime.factory() as session, session.begin():
        with pytest.raises(customers.CustomerNotFound):
            await customers.merge(session, b.customer_id, a.customer_id, actor="marco")

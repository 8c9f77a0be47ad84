"""Resolving addresses to customers, and merging two customers without losing anything."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.envelopes import Address
from hub.core.identity import identity_key
from hub.store.bulk import DriverStatement, pairs_in, session_binder
from hub.store.ids import allocate
from hub.store.models import (
    AuditEvent,
    CallLog,
    CampaignRecipient,
    Case,
    Complaint,
    Consent,
    Conversation,
    Customer,
    Identity,
    Intervention,
    Message,
    StageChange,
    Stay,
    Survey,
    TimelineEntry,
    table,
)
from hub.store.types import utcnow


class CustomerNotFound(LookupError):
    """No customer with that id (or it was merged away)."""


async def by_identity(session: AsyncSession, address: Address) -> Customer | None:
    """The customer owning an address, following merges."""
    kind, value = identity_key(address)
    row = await session.execute(
        select(Customer).join(Identity, col(Identity.customer_id) == col(Customer.id)).where(
            col(Identity.kind) == kind, col(Identity.value) == value
        )
    )
    return row.scalar_one_or_none()


async def resolve(session: AsyncSession, address: Address) -> tuple[Customer, bool]:
    """Find the customer for an address or create one; returns (customer, created)."""
    if (customer := await by_identity(session, address)) is not None:
        return customer, False
    customer = Customer(display_name=address.name or address.value)
    session.add(customer)
    await session.flush()
    assert customer.id is not None
    kind, value = identity_key(address)
    session.add(Identity(customer_id=customer.id, kind=kind, value=value))
    session.add(StageChange(customer_id=customer.id, to_stage=customer.lifecycle_stage, cause="created"))
    # A unique violation here means another transaction created the identity first: the
    # caller's retry finds it on the next attempt.
    await session.flush()
    return customer, True


async def get(session: AsyncSession, customer_id: int) -> Customer:
    """Load a live (not merged-away) customer or raise CustomerNotFound."""
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.merged_into_id is not None:
        raise CustomerNotFound(customer_id)
    return customer


# Stays and surveys too: a merged customer's purchases and scores count for the survivor's RFM and stage.
_MOVED = (Identity, Conversation, Message, CallLog, TimelineEntry, Case, Complaint, Intervention, Consent, StageChange,
          Survey, Stay)


async def merge(session: AsyncSession, source_id: int, target_id: int, actor: str) -> Customer:
    """Move everything of `source` onto `target`; the source stays as a tombstone pointing at it."""
    if source_id == target_id:
        raise ValueError("cannot merge a customer into itself")
    source, target = await get(session, source_id), await get(session, target_id)
    counts: dict[str, int] = {}
    for model in _MOVED:
        result = await session.execute(
            update(model).where(col(model.customer_id) == source_id).values(customer_id=target_id)
        )
        counts[str(model.__tablename__)] = result.rowcount  # type: ignore[attr-defined]
    counts["campaignrecipient"] = await _move_recipients(session, source_id, target_id)
    target.tags = sorted(set(target.tags) | set(source.tags))
    target.attributes = {**source.attributes, **target.attributes}
    target.updated_at = utcnow()
    source.merged_into_id = target_id
    session.add(
        AuditEvent(actor=actor, action="customer.merged", entity="customer", entity_id=target_id,
                   data={"source_id": source_id, "moved": counts})
    )
    await session.flush()
    return target


async def _move_recipients(session: AsyncSession, source_id: int, target_id: int) -> int:
    """Campaign recipients move unless the target already has one for that campaign and channel."""
    taken = select(CampaignRecipient.campaign_id, CampaignRecipient.channel).where(
        col(CampaignRecipient.customer_id) == target_id
    )
    rows = (await session.execute(
        select(CampaignRecipient).where(col(CampaignRecipient.customer_id) == source_id)
    )).scalars().all()
    clash = {(c, ch) for c, ch in (await session.execute(taken)).all()}
    moved = 0
    for row in rows:
        if (row.campaign_id, row.channel) not in clash:
            row.customer_id = target_id
            moved += 1
    return moved


async def resolve_many(
    session: AsyncSession, addresses: list[Address], *,
    contact_at: Mapping[tuple[str, str], datetime] | None = None, created: set[int] | None = None,
) -> dict[tuple[str, str], int]:
    """Customer ids for many addresses at once, creating customers for the unknown ones.

    New customers start with `contact_at[key]` as their last contact; their ids are added to `created`.
    """
    wanted = {identity_key(a): a for a in addresses}
    known: dict[tuple[str, str], int] = {}
    identity = table(Identity).c
    for where in pairs_in(identity.kind, identity.value, wanted):
        # kind = ? AND value IN (...), OR'd per kind, walks the unique index
        found = await session.execute(sa_select(identity.kind, identity.value, identity.customer_id).where(where))
        known.update({(kind, value): cid for kind, value, cid in found.all()})
    missing = [key for key in wanted if key not in known]
    if missing:
        new = await _create_many(session, [(key, wanted[key]) for key in missing], contact_at or {})
        known.update(new)
        if created is not None:
            created.update(new.values())
    return known


_CUSTOMER = DriverStatement.insert(table(Customer), (
    "id", "display_name", "language", "timezone", "lifecycle_stage", "tags", "attributes", "created_at", "updated_at",
    "last_contact_at"))
_IDENTITY = DriverStatement.insert(table(Identity), ("customer_id", "kind", "value", "created_at"))
_STAGE_CHANGE = DriverStatement.insert(table(StageChange), ("customer_id", "to_stage", "cause", "changed_at"))


async def _create_many(
    session: AsyncSession, new: list[tuple[tuple[str, str], Address]], contact_at: Mapping[tuple[str, str], datetime]
) -> dict[tuple[str, str], int]:
    bind = session_binder(session)
    now, no_tags, no_attributes = bind.time(utcnow()), bind.json([]), bind.json({})
    ids = await allocate(session, "customer", len(new))
    await _CUSTOMER.run(session, [
        (cid, address.name or address.value, "it", "Europe/Rome", "prospect", no_tags, no_attributes, now, now,
         bind.time(contact_at.get(key)))
        for cid, (key, address) in zip(ids, new, strict=True)
    ])
    await _IDENTITY.run(session, [(cid, kind, value, now) for ((kind, value), _), cid in zip(new, ids, strict=True)])
    await _STAGE_CHANGE.run(session, [(cid, "prospect", "created", now) for cid in ids])
    return {key: cid for (key, _), cid in zip(new, ids, strict=True)}

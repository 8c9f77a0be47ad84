"""Phone calls on the customer timeline: one CallLog row per call, updated by later callbacks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core import customers
from hub.core.envelopes import CallLog, Direction
from hub.core.events import CALL_LOGGED, CALL_MISSED, Event, EventHandler, publish
from hub.store.models import CallLog as CallRow
from hub.store.models import TimelineEntry


@dataclass(frozen=True, slots=True)
class CallResult:
    call_id: int
    customer_id: int
    created: bool
    changed: bool


async def _existing(session: AsyncSession, call: CallLog) -> CallRow | None:
    found = await session.execute(
        select(CallRow).where(col(CallRow.source) == call.source, col(CallRow.external_id) == call.external_id)
    )
    return found.scalar_one_or_none()


def _apply(row: CallRow, call: CallLog) -> bool:
    fields = {
        "answered_at": call.answered_at, "ended_at": call.ended_at, "duration_s": call.duration_s,
        "disposition": call.disposition, "recording_url": call.recording_url,
    }
    changed = False
    for name, value in fields.items():
        if value not in (None, 0) and getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


async def log_call(
    session: AsyncSession, call: CallLog, handlers: tuple[EventHandler, ...] = (), agent_id: int | None = None
) -> CallResult:
    """Record a call once per (source, external_id); later callbacks fill in what they add."""
    if (row := await _existing(session, call)) is not None:
        was_missed = row.disposition in {"no-answer", "busy", "failed", "missed", "canceled"}
        changed = _apply(row, call)
        assert row.id is not None
        if changed and call.missed and not was_missed:
            await _publish_call(session, row, handlers)
        return CallResult(row.id, row.customer_id, created=False, changed=changed)
    customer_address = call.caller if call.direction is Direction.IN else call.callee
    if customer_address.value.startswith("ext:"):
        customer_address = call.callee if call.direction is Direction.IN else call.caller
    customer, _ = await customers.resolve(session, customer_address)
    assert customer.id is not None
    row = CallRow(
        customer_id=customer.id, source=call.source, external_id=call.external_id,
        direction=call.direction.value, from_number=call.caller.value, to_number=call.callee.value,
        started_at=call.started_at, answered_at=call.answered_at, ended_at=call.ended_at,
        duration_s=call.duration_s, disposition=call.disposition, recording_url=call.recording_url,
        logged_by_agent_id=agent_id,
    )
    session.add(row)
    await session.flush()
    session.add(TimelineEntry(
        customer_id=customer.id, kind="call", ref_id=row.id, channel="phone",
        summary=f"{call.direction.value} call, {call.disposition}, {call.duration_s}s",
        data={"direction": call.direction.value, "disposition": call.disposition, "duration_s": call.duration_s},
        occurred_at=call.started_at,
    ))
    if customer.last_contact_at is None or call.started_at > customer.last_contact_at:
        customer.last_contact_at = call.started_at
    await _publish_call(session, row, handlers)
    assert row.id is not None
    return CallResult(row.id, customer.id, created=True, changed=True)


async def _publish_call(session: AsyncSession, row: CallRow, handlers: tuple[EventHandler, ...]) -> None:
    missed = row.disposition in {"no-answer", "busy", "failed", "missed", "canceled"}
    event = Event(CALL_MISSED if missed else CALL_LOGGED, customer_id=row.customer_id,
                  data={"call_id": row.id, "direction": row.direction, "disposition": row.disposition})
    await publish(session, event, handlers)


__all__ = ["CallResult", "log_call"]

"""Domain events raised by the core; routing and live updates subscribe to them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.bulk import DriverStatement, session_binder
from hub.store.models import DomainEvent, table
from hub.store.types import utcnow


@dataclass(frozen=True, slots=True)
class Event:
    """A fact that happened inside a transaction; `type` is the name rules subscribe to."""

    type: str
    customer_id: int | None = None
    conversation_id: int | None = None
    message_id: int | None = None
    team_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    depth: int = 0


EventHandler = Callable[[AsyncSession, Event], Awaitable[None]]
_TYPES_ATTR = "hub_event_types"


def handles(*types: str) -> Callable[[EventHandler], EventHandler]:
    """Declare the only event types a handler acts on, so bulk publishers can skip it for others."""
    def declare(handler: EventHandler) -> EventHandler:
        setattr(handler, _TYPES_ATTR, frozenset(types))
        return handler
    return declare


def accepts(handler: EventHandler, event_type: str) -> bool:
    """Whether the handler may act on this type (handlers that declare nothing take every type)."""
    types: frozenset[str] | None = getattr(handler, _TYPES_ATTR, None)
    return types is None or event_type in types

MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
NOTE_ADDED = "note.added"
CONVERSATION_CREATED = "conversation.created"
CONVERSATION_STATUS_CHANGED = "conversation.status_changed"
CONVERSATION_ASSIGNED = "conversation.assigned"
CALL_LOGGED = "call.logged"
CALL_MISSED = "call.missed"
DELIVERY_UPDATED = "delivery.updated"
CUSTOMER_MERGED = "customer.merged"


async def publish(session: AsyncSession, event: Event, handlers: Sequence[EventHandler]) -> None:
    """Store the event for live streams, then let each handler act in the same transaction."""
    session.add(
        DomainEvent(
            type=event.type,
            conversation_id=event.conversation_id,
            customer_id=event.customer_id,
            team_id=event.team_id,
            payload={"message_id": event.message_id, **event.data},
        )
    )
    for handler in handlers:
        await handler(session, event)


_EVENT = DriverStatement.insert(
    table(DomainEvent), ("type", "conversation_id", "customer_id", "team_id", "payload", "at"))


async def publish_many(session: AsyncSession, events: Sequence[Event], handlers: Sequence[EventHandler]) -> None:
    """Store many events in one statement, then run the handlers on each, in order."""
    if not events:
        return
    bind = session_binder(session)
    at = bind.time(utcnow())  # one transaction, one moment
    await _EVENT.run(session, [
        (e.type, e.conversation_id, e.customer_id, e.team_id, bind.json({"message_id": e.message_id, **e.data}), at)
        for e in events
    ])
    for event in events:
        for handler in handlers:
            await handler(session, event)

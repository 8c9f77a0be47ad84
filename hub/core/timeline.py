"""A customer's timeline: every message, note, call and status change, newest first, by keyset."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.store.models import Conversation, TimelineEntry


class BadCursor(ValueError):
    """A cursor that was not produced by this module."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[TimelineEntry]
    next_cursor: str | None


def encode_cursor(at: datetime, row_id: int) -> str:
    """An opaque cursor for the position just after (older than) this row."""
    raw = json.dumps([at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Read a cursor back; raise BadCursor on anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        moment = datetime.fromisoformat(at)
        if not isinstance(row_id, int) or moment.tzinfo is None:
            raise ValueError("bad cursor fields")
        return moment, row_id
    except (ValueError, TypeError) as exc:
        raise BadCursor("cursor is not valid; use the next_cursor of the previous page") from exc


async def timeline(
    session: AsyncSession, customer_id: int, *, before: str | None = None, limit: int = 50,
    visible: ColumnElement[bool] | None = None,
) -> Page:
    """One page of the timeline, newest first; pass `next_cursor` as `before` for older items.

    Keyset on (occurred_at, id) so pages stay stable while new items arrive at the top.
    `visible` (a WHERE on Conversation) hides entries of conversations the caller may not see.
    """
    query = select(TimelineEntry).where(col(TimelineEntry.customer_id) == customer_id)
    if visible is not None:
        # Only this customer's conversations: a probe of a few rows, not a semi-join over them all.
        allowed = select(col(Conversation.id)).where(col(Conversation.customer_id) == customer_id, visible)
        query = query.where(or_(col(TimelineEntry.conversation_id).is_(None),
                                col(TimelineEntry.conversation_id).in_(allowed)))
    if before is not None:
        at, row_id = decode_cursor(before)
        query = query.where(or_(
            col(TimelineEntry.occurred_at) < at,
            and_(col(TimelineEntry.occurred_at) == at, col(TimelineEntry.id) < row_id),
        ))
    query = query.order_by(col(TimelineEntry.occurred_at).desc(), col(TimelineEntry.id).desc()).limit(limit + 1)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].occurred_at, rows[-1].id) if more and rows[-1].id is not None else None
    return Page(rows, cursor)

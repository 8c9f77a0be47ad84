"""The auto-reply loop guard routing asks before answering a mail automatically (RFC 3834)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.channels.email.autoreply import should_auto_reply
from hub.core.envelopes import Flag
from hub.store.models import Message
from hub.store.types import utcnow


async def recent_auto_replies(session: AsyncSession, address: str, *, since: datetime) -> int:
    """Outbound mail no agent wrote (auto-replies) sent to `address` since `since`."""
    found = await session.execute(
        select(func.count()).select_from(Message).where(
            col(Message.direction) == "out", col(Message.channel) == "email",
            col(Message.recipient) == address.lower(), col(Message.author_agent_id).is_(None),
            col(Message.created_at) >= since,
        )
    )
    return int(found.scalar_one())


async def may_auto_reply(
    session: AsyncSession, address: str, flags: frozenset[Flag] | set[str], *, cap_per_hour: int,
    now: datetime | None = None,
) -> bool:
    """True when a person wrote (no auto/bulk/bounce/own-mail flag) and the hourly cap is not reached."""
    known = frozenset(Flag(f) for f in flags if f in Flag._value2member_map_)
    if not should_auto_reply(known, 0, cap_per_hour):
        return False  # flags alone say no: skip the count query
    count = await recent_auto_replies(session, address, since=(now or utcnow()) - timedelta(hours=1))
    return should_auto_reply(known, count, cap_per_hour)

"""SMS/WhatsApp consent: ledger rows and suppressions for opt-out, opt-in and Twilio's 21610."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, delete, select

from hub.core.delivery import UNSUBSCRIBED, suppress
from hub.store.models import Consent, Suppression
from hub.store.types import utcnow

OPT_OUT = "opt_out"
PURPOSE = "marketing"


async def opt_out(
    session: AsyncSession, *, customer_id: int, channel: str, address: str, source: str,
    detail: str | None = None, at: datetime | None = None,
) -> None:
    """Record a withdrawal in the ledger and suppress the number on this channel."""
    session.add(Consent(customer_id=customer_id, channel=channel, purpose=PURPOSE, granted=False,
                        source=source, detail=detail, at=at or utcnow()))
    await suppress(session, channel, address, reason=OPT_OUT, detail=source)


async def opt_in(
    session: AsyncSession, *, customer_id: int, channel: str, address: str, source: str,
    detail: str | None = None, at: datetime | None = None,
) -> None:
    """Record a renewed consent and lift an opt-out or unsubscribe suppression (never a hard bounce's)."""
    session.add(Consent(customer_id=customer_id, channel=channel, purpose=PURPOSE, granted=True,
                        source=source, detail=detail, at=at or utcnow()))
    await session.execute(
        delete(Suppression).where(
            col(Suppression.channel) == channel, col(Suppression.address) == address,
            col(Suppression.reason).in_((OPT_OUT, UNSUBSCRIBED)),
        )
    )


async def suppression_of(session: AsyncSession, channel: str, address: str) -> Suppression | None:
    """The suppression that stops sends to this address on this channel, if any."""
    found = await session.execute(
        select(Suppression).where(col(Suppression.channel) == channel, col(Suppression.address) == address)
    )
    return found.scalars().first()

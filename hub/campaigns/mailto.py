"""Unsubscribe by mail: a mail sent to the List-Unsubscribe `mailto:` address withdraws consent.

The address is `unsubscribe+<token>@<mail domain>` and the token is HMAC-signed for one campaign
recipient, so a forged or altered address is ordinary mail. As in listmonk the request never
reaches the inbox: it becomes a consent change on the customer's timeline.
"""

from __future__ import annotations

import hashlib
import logging
import re
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.campaigns import consent, tokens
from hub.core.envelopes import Inbound
from hub.store.engine import SessionFactory
from hub.store.models import CampaignRecipient, RawInput

if TYPE_CHECKING:
    from hub.runtime import Runtime

log = logging.getLogger(__name__)

SOURCE = "unsubscribe_mailto"
_ADDRESS_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_MARKER = f"{tokens.UNSUBSCRIBE_LOCAL}+".encode()


def header_block(raw: bytes) -> bytes:
    """The header section of a raw mail (everything before the first empty line)."""
    end = _HEAD_END.search(raw)
    return raw[:end.start()] if end else raw


def unsubscribe_tokens(raw: bytes, mail_domain: str) -> list[str]:
    """Tokens of the `unsubscribe+<token>@<mail_domain>` addresses a raw mail was sent to, in order."""
    head = header_block(raw)
    if _MARKER not in head.lower():
        return []  # nearly every mail: no header parse at all
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(head)
    found: list[str] = []
    for name in _ADDRESS_HEADERS:
        for _, address in getaddresses([str(v) for v in headers.get_all(name, [])]):
            local, _, domain = address.strip().rpartition("@")
            base, plus, token = local.partition("+")
            if (plus and token and base.lower() == tokens.UNSUBSCRIBE_LOCAL
                    and domain.lower() == mail_domain.lower() and token not in found):
                found.append(token)
    return found


async def _keep_raw(session: AsyncSession, raw: bytes) -> int | None:
    """The raw request, kept once (a mailbox re-read after a crash finds the same bytes)."""
    digest = hashlib.sha256(raw).hexdigest()
    found = await session.execute(select(col(RawInput.id)).where(col(RawInput.sha256) == digest).limit(1))
    if (known := found.scalar_one_or_none()) is not None:
        return int(known)
    row = RawInput(channel="email", content_type="message/rfc822", sha256=digest, data=raw)
    session.add(row)
    await session.flush()
    return row.id


async def _apply(factory: SessionFactory, recipient_id: int, item: Inbound) -> bool:
    async with factory() as session, session.begin():
        recipient = await session.get(CampaignRecipient, recipient_id)
        if recipient is None:
            return False
        raw_id = await _keep_raw(session, item.raw or b"")
        await consent.unsubscribe(session, recipient, source=SOURCE,
                                  detail=f"mail <{item.external_id}> from {item.sender.value} (raw {raw_id})")
    return True


async def unsubscribe_by_mail(runtime: Runtime, item: Inbound) -> bool:
    """Apply a mail sent to a signed unsubscribe address; False when no token verifies (ordinary mail)."""
    settings = runtime.settings
    for token in unsubscribe_tokens(item.raw or b"", settings.mail_domain):
        try:
            recipient_id = tokens.verify_address(settings.secret_key, "unsub", token)
        except tokens.BadToken:
            log.info("mail <%s> went to an unsubscribe address with a bad token; kept as mail", item.external_id)
            continue
        if await _apply(runtime.factory, recipient_id, item):
            return True
    return False

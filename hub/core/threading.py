"""Conversation threading: which conversation an inbound message belongs to.

Order (first match wins): reply token, referenced message ids (In-Reply-To, References),
same normalised subject from the same customer within the window (email), the customer's
open conversation on the channel within the window, else a new conversation.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.envelopes import Channel, Inbound
from hub.store.models import Conversation, Message, table

TOKEN_PREFIX = "token:"

# Reply/forward prefixes of the mail clients our guests use (EN, IT, DE, FR, ES, NL, Nordic).
_PREFIX = re.compile(r"^\s*(?:(?:re|r|aw|sv|vs|antw|fwd?|i|wg|tr|rif|enc|rv)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def normalise_subject(subject: str | None) -> str:
    """Strip reply/forward prefixes and collapse spaces, for matching a reply to its thread."""
    if not subject:
        return ""
    stripped = _PREFIX.sub("", subject)
    return " ".join(stripped.split()).casefold()


def new_thread_token() -> str:
    """A random token for reply+TOKEN@domain addresses; unguessable so nobody can inject into a thread."""
    return secrets.token_hex(10)


def split_refs(refs: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Separate reply tokens from referenced message ids."""
    tokens = [r[len(TOKEN_PREFIX):] for r in refs if r.startswith(TOKEN_PREFIX)]
    ids = [r for r in refs if not r.startswith(TOKEN_PREFIX)]
    return tokens, ids


@dataclass(slots=True, eq=False)
class Thread:
    """A conversation as threading sees it: loaded from the store, or opened by this batch (`id` None
    until the batch's one INSERT); compared by identity, one object per conversation per batch."""

    customer_id: int
    channel: str
    subject: str | None
    thread_token: str
    last_message_at: datetime
    status: str = "open"
    id: int | None = None
    team_id: int | None = None
    inbox_id: int | None = None
    recipient: str = ""
    created_at: datetime | None = None
    loaded_last_message_at: datetime | None = None  # as stored, to write only a time that moved

    @property
    def new(self) -> bool:
        """Opened by this batch, not yet in the store."""
        return self.loaded_last_message_at is None


_conversation = table(Conversation).c
# The columns threading reads, in the order `ThreadIndex._thread` unpacks them.
_COLUMNS = (_conversation.id, _conversation.customer_id, _conversation.channel, _conversation.subject,
            _conversation.status, _conversation.thread_token, _conversation.last_message_at, _conversation.team_id,
            _conversation.inbox_id)


class ThreadIndex:
    """Everything threading needs for a batch of messages, loaded in at most three queries.

    Rows are read as plain `Thread` records, not ORM objects: no identity map or unit of work
    to feed, and the batch writes its changes in one UPDATE. Decisions are then made in memory,
    in arrival order, so a message can continue a conversation opened earlier in the same batch.
    """

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.by_id: dict[int, Thread] = {}
        self.by_token: dict[str, Thread] = {}
        self.by_ref: dict[tuple[str, str], Thread] = {}
        self.recent: dict[tuple[int, str], list[Thread]] = {}

    @classmethod
    async def load(
        cls, session: AsyncSession, items: list[tuple[int, Inbound]], window: timedelta
    ) -> ThreadIndex:
        """Load conversations named by tokens or refs, and the customers' recent ones."""
        index = cls(window)
        tokens = {t for _, item in items for t in split_refs(item.thread_refs)[0]}
        refs = {(item.channel.value, r) for _, item in items for r in split_refs(item.thread_refs)[1][:50]}
        if tokens:
            found = await session.execute(select(*_COLUMNS).where(_conversation.thread_token.in_(tokens)))
            index.by_token = {t.thread_token: t for t in map(index._thread, found.all())}
        if refs:
            await index._load_refs(session, refs)
        await index._load_recent(session, items)
        return index

    def _thread(self, row: Any) -> Thread:
        """The one Thread of a loaded conversation row (a conversation found twice stays one object)."""
        cid, customer_id, channel, subject, status, token, last, team_id, inbox_id = row
        if (known := self.by_id.get(cid)) is not None:
            return known
        thread = Thread(customer_id, channel, subject, token, last, status, cid, team_id, inbox_id,
                        loaded_last_message_at=last)
        self.by_id[cid] = thread
        return thread

    async def _load_refs(self, session: AsyncSession, refs: set[tuple[str, str]]) -> None:
        ids = {r for _, r in refs}
        message = table(Message).c
        found = await session.execute(
            select(message.channel, message.external_id, *_COLUMNS)
            .join_from(table(Message), table(Conversation), message.conversation_id == _conversation.id)
            .where(message.external_id.in_(ids))
        )
        for channel, external_id, *conversation in found.all():
            if (channel, external_id) in refs and external_id is not None:
                self.by_ref[(channel, external_id)] = self._thread(conversation)

    async def _load_recent(self, session: AsyncSession, items: list[tuple[int, Inbound]]) -> None:
        customer_ids = {cid for cid, _ in items}
        oldest = min(item.received_at for _, item in items) - self.window
        found = await session.execute(
            select(*_COLUMNS).where(
                _conversation.customer_id.in_(customer_ids), _conversation.last_message_at >= oldest
            ).order_by(_conversation.last_message_at.desc())
        )
        for thread in map(self._thread, found.all()):
            self.recent.setdefault((thread.customer_id, thread.channel), []).append(thread)

    def choose(self, customer_id: int, item: Inbound) -> Thread | None:
        """The conversation this message continues (same order of rules as `find`), or None."""
        tokens, ids = split_refs(item.thread_refs)
        for token in tokens:
            if token in self.by_token:
                return self.by_token[token]
        for ref in ids[:50]:
            if (item.channel.value, ref) in self.by_ref:
                return self.by_ref[(item.channel.value, ref)]
        return self._by_subject(customer_id, item) or self._open_on_channel(customer_id, item)

    def _candidates(self, customer_id: int, item: Inbound) -> list[Thread]:
        since = item.received_at - self.window
        pool = self.recent.get((customer_id, item.channel.value), [])
        return sorted((c for c in pool if c.last_message_at >= since), key=lambda c: c.last_message_at, reverse=True)

    def _by_subject(self, customer_id: int, item: Inbound) -> Thread | None:
        wanted = normalise_subject(item.subject)
        if item.channel is not Channel.EMAIL or not wanted:
            return None
        return next((c for c in self._candidates(customer_id, item) if normalise_subject(c.subject) == wanted), None)

    def _open_on_channel(self, customer_id: int, item: Inbound) -> Thread | None:
        if item.channel is Channel.EMAIL and item.subject:
            return None  # a new email subject is a new topic; SMS and calls have no subjects
        return next((c for c in self._candidates(customer_id, item) if c.status != "resolved"), None)

    def remember(self, conversation: Thread, item: Inbound) -> None:
        """Make a conversation (new or continued) and this message findable by later messages."""
        key = (conversation.customer_id, conversation.channel)
        pool = self.recent.setdefault(key, [])
        if conversation not in pool:
            pool.append(conversation)
        self.by_token[conversation.thread_token] = conversation
        self.by_ref[(item.channel.value, item.external_id)] = conversation

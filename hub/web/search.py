"""Full-text search over messages: an FTS5 index on SQLite, a GIN tsvector expression index on PostgreSQL.

Both are kept in sync by the database itself (FTS5 triggers; PostgreSQL computes the indexed
expression on every write), so messages stored by any process - web, worker, CLI - are found.
`ensure_index` is idempotent and runs at every start of the web app, after the migrations.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import ColumnElement, and_, column, or_, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from hub.core.timeline import decode_cursor, encode_cursor
from hub.store.models import Conversation, Customer, Message
from hub.web import schemas
from hub.web.scope import Scope

# 'simple' keeps words as written: guests write Italian, English, German... in one inbox.
PG_DOCUMENT = "to_tsvector('simple', coalesce(message.subject, '') || ' ' || message.body_text)"

SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5(subject, body_text, content='message', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS message_fts_ai AFTER INSERT ON message BEGIN "
    "INSERT INTO message_fts(rowid, subject, body_text) VALUES (new.id, coalesce(new.subject, ''), new.body_text); END",
    "CREATE TRIGGER IF NOT EXISTS message_fts_ad AFTER DELETE ON message BEGIN "
    "INSERT INTO message_fts(message_fts, rowid, subject, body_text) "
    "VALUES ('delete', old.id, coalesce(old.subject, ''), old.body_text); END",
    "CREATE TRIGGER IF NOT EXISTS message_fts_au AFTER UPDATE OF subject, body_text ON message BEGIN "
    "INSERT INTO message_fts(message_fts, rowid, subject, body_text) "
    "VALUES ('delete', old.id, coalesce(old.subject, ''), old.body_text); "
    "INSERT INTO message_fts(rowid, subject, body_text) VALUES (new.id, coalesce(new.subject, ''), new.body_text); "
    "END",
)
PG_DDL = f"CREATE INDEX IF NOT EXISTS ix_message_fulltext ON message USING gin (({PG_DOCUMENT}))"

_WORD = re.compile(r"\w+", re.UNICODE)
_SAFE_TSQUERY = re.compile(r"[\w&:* ]+", re.UNICODE)
MAX_TERMS = 8
WALK_BUDGET_MS = 60
# Below this many estimated matches, collecting them all beats walking every message newest-first.
RARE_ESTIMATE = 5_000
QUERY_CANCELED = "57014"


async def ensure_index(engine: AsyncEngine) -> None:
    """Create the search index (and its triggers) when missing; fill it from existing messages once."""
    async with engine.begin() as conn:
        if engine.dialect.name != "sqlite":
            await conn.execute(text(PG_DDL))
            return
        existed = (await conn.execute(text(
            "SELECT 1 FROM sqlite_master WHERE name = 'message_fts'"))).first() is not None
        for statement in SQLITE_DDL:
            await conn.execute(text(statement))
        if not existed:
            await conn.execute(text("INSERT INTO message_fts(message_fts) VALUES ('rebuild')"))


def terms(q: str) -> list[str]:
    """The words of a query, lower-cased; punctuation and operators are dropped so no input is a syntax error."""
    return [w.lower() for w in _WORD.findall(q)][:MAX_TERMS]


def matches(dialect: str, q: str) -> ColumnElement[bool] | None:
    """A WHERE clause on Message for messages containing every word (the last one as a prefix)."""
    words = terms(q)
    if not words:
        return None
    if dialect == "sqlite":
        expr = " ".join(f'"{w}"' for w in words[:-1]) + f' "{words[-1]}"*'
        hits = text("SELECT rowid FROM message_fts WHERE message_fts MATCH :fts_query").bindparams(fts_query=expr)
        return col(Message.id).in_(hits.columns(column("rowid")))
    query = " & ".join([*words[:-1], f"{words[-1]}:*"])
    # Inlined, not bound: asyncpg prepares statements and PostgreSQL's generic plan cannot see how rare
    # the words are, so it would walk every message newest-first for a booking code. `terms` keeps
    # only word characters, and the check below makes sure nothing else can reach the SQL text.
    if not _SAFE_TSQUERY.fullmatch(query):
        raise ValueError(f"unexpected characters in search terms: {query!r}")
    return text(f"{PG_DOCUMENT} @@ to_tsquery('simple', '{query}')")  # type: ignore[return-value]


def snippet(body: str, q: str, width: int = 160) -> str:
    """A piece of the body around the first matching word, for result lists."""
    flat = " ".join(body.split())
    lowered = flat.lower()
    positions = [p for w in terms(q) if (p := lowered.find(w)) >= 0]
    start = max(min(positions, default=0) - width // 3, 0)
    piece = flat[start:start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


def _base(match: ColumnElement[bool], scope: Scope, query: schemas.SearchQuery) -> Any:
    stmt = (select(Message, col(Customer.display_name))
            .join(Conversation, col(Conversation.id) == Message.conversation_id)
            .join(Customer, col(Customer.id) == Message.customer_id)
            .where(match, scope.conversation_clause()))
    if query.before:
        at, row_id = decode_cursor(query.before)
        stmt = stmt.where(or_(col(Message.created_at) < at,
                              and_(col(Message.created_at) == at, col(Message.id) < row_id)))
    return stmt.limit(query.limit + 1)


async def _rows(session: AsyncSession, dialect: str, stmt: Any, match: ColumnElement[bool]) -> list[Any]:
    """Newest first. On PostgreSQL two plans compete: walk the created_at index (best for common
    words), or collect every match through the GIN index and sort them (best for rare words).

    The planner prices to_tsvector far below its real cost, so it cannot choose between them; but
    ANALYZE keeps word statistics for the index expression, so its row estimate tells rare words
    (collect at once) from common ones (walk under a short timeout, collect if it runs out).
    """
    newest = (col(Message.created_at).desc(), col(Message.id).desc())
    if dialect != "postgresql":
        return list((await session.execute(stmt.order_by(*newest))).all())
    walk = stmt.order_by(*newest)
    # `+ interval '0'` hides the ordering from the index, so only the GIN bitmap path remains.
    collect = stmt.order_by((col(Message.created_at) + text("interval '0 seconds'")).desc(), col(Message.id).desc())
    # Collecting costs what the matches cost, so it never needs a budget; the walk can cost a scan
    # of every message (a rare word), so it only ever runs under one.
    if await _estimated_matches(session, match) >= RARE_ESTIMATE:
        rows = await _within_budget(session, walk)
        if rows is not None:
            return rows
    return list((await session.execute(collect)).all())


async def _estimated_matches(session: AsyncSession, match: ColumnElement[bool]) -> float:
    """The planner's row estimate for the match alone (the match text is inlined and checked in `matches`)."""
    found = (await session.execute(text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM message WHERE {match}"))).scalar_one()
    plan = json.loads(found) if isinstance(found, str) else found
    return float(plan[0]["Plan"]["Plan Rows"])


async def _within_budget(session: AsyncSession, stmt: Any) -> list[Any] | None:
    """The rows, or None when the statement needs longer than the budget."""
    try:
        async with session.begin_nested():
            await session.execute(text(f"SET LOCAL statement_timeout = {WALK_BUDGET_MS}"))
            rows = list((await session.execute(stmt)).all())
            await session.execute(text("SET LOCAL statement_timeout TO DEFAULT"))
            return rows
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != QUERY_CANCELED:
            raise
    return None


async def search_page(session: AsyncSession, dialect: str, scope: Scope, query: schemas.SearchQuery
                      ) -> schemas.SearchPage:
    """Messages matching the query in conversations this agent may see, newest first, by keyset."""
    match = matches(dialect, query.q)
    if match is None:
        return schemas.SearchPage(items=[], next_before=None)
    rows = await _rows(session, dialect, _base(match, scope, query), match)
    hits = [schemas.SearchHit(
        message_id=m.id, conversation_id=m.conversation_id, customer_id=m.customer_id, customer_name=name,
        channel=m.channel, direction=m.direction, subject=m.subject,
        snippet=snippet(m.body_text, query.q), created_at=m.created_at) for m, name in rows[:query.limit]]
    last = rows[query.limit - 1][0] if len(rows) > query.limit else None
    return schemas.SearchPage(items=hits, next_before=encode_cursor(last.created_at, last.id)
                              if last is not None and last.id is not None else None)

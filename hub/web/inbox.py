"""The shared inbox's queries: views (mine, unassigned, team, all), filters, keyset pages and counts."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.core.timeline import BadCursor, decode_cursor, encode_cursor
from hub.store.models import Complaint, Conversation, Customer, Message
from hub.web import schemas, search
from hub.web.scope import Scope

OPEN_COMPLAINT = ("open", "in_progress")
PREVIEW_LEN = 140


class BadQuery(ValueError):
    """A query parameter that parsed but cannot be used (a foreign cursor); `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def view_clause(scope: Scope, view: str) -> ColumnElement[bool]:
    """The conversations of one inbox view (inside what the scope may see)."""
    if view == "mine":
        return col(Conversation.assignee_id) == scope.agent_id
    if view == "unassigned":
        return col(Conversation.assignee_id).is_(None)
    if view == "team":
        return col(Conversation.team_id).in_(sorted(scope.team_ids)) if scope.team_ids else false()
    return true()


def complaint_open() -> ColumnElement[bool]:
    return exists().where(col(Complaint.conversation_id) == col(Conversation.id),
                          col(Complaint.status).in_(OPEN_COMPLAINT))


def tag_clause(dialect: str, tag: str) -> ColumnElement[bool]:
    if dialect == "sqlite":
        return text("EXISTS (SELECT 1 FROM json_each(conversation.tags) WHERE json_each.value = :tag_value)"
                    ).bindparams(tag_value=tag)  # type: ignore[return-value]
    return text("conversation.tags @> CAST(:tag_json AS jsonb)").bindparams(  # type: ignore[return-value]
        tag_json=json.dumps([tag]))


def _assignee_clause(scope: Scope, assignee: str) -> ColumnElement[bool]:
    if assignee == "me":
        return col(Conversation.assignee_id) == scope.agent_id
    if assignee == "none":
        return col(Conversation.assignee_id).is_(None)
    return col(Conversation.assignee_id) == int(assignee)


def filters(dialect: str, scope: Scope, query: schemas.InboxQuery) -> list[ColumnElement[bool]]:
    """Every WHERE clause the query asks for, visibility first."""
    clauses = [scope.conversation_clause(), view_clause(scope, query.view)]
    simple = {Conversation.status: query.status, Conversation.channel: query.channel,
              Conversation.priority: query.priority, Conversation.customer_id: query.customer_id}
    clauses += [col(column) == value for column, value in simple.items() if value is not None]
    if query.assignee:
        clauses.append(_assignee_clause(scope, query.assignee))
    if query.tag:
        clauses.append(tag_clause(dialect, query.tag))
    if query.complaint == "open":
        clauses.append(complaint_open())
    if query.q and (match := search.matches(dialect, query.q)) is not None:
        clauses.append(col(Conversation.id).in_(select(col(Message.conversation_id)).where(match)))
    return clauses


def before_clause(cursor: str) -> ColumnElement[bool]:
    """Rows older than the cursor's (last_message_at, id): pages stay stable while new messages arrive."""
    try:
        at, row_id = decode_cursor(cursor)
    except BadCursor as exc:
        raise BadQuery("before", str(exc)) from None
    return or_(col(Conversation.last_message_at) < at,
               and_(col(Conversation.last_message_at) == at, col(Conversation.id) < row_id))


@dataclass(frozen=True, slots=True)
class Row:
    conversation: Conversation
    customer_name: str
    preview: str
    complaint_open: bool


def _newest_text() -> ColumnElement[str]:
    """The newest non-note message text of the row's conversation: one index probe per page row."""
    return (select(func.substr(func.coalesce(Message.visible_text, Message.body_text), 1, PREVIEW_LEN))
            .where(col(Message.conversation_id) == col(Conversation.id), col(Message.direction) != "note")
            .order_by(col(Message.created_at).desc(), col(Message.id).desc()).limit(1)
            .correlate(Conversation).scalar_subquery())


async def list_page(session: AsyncSession, dialect: str, scope: Scope,
                    query: schemas.InboxQuery) -> schemas.ConversationPage:
    """One page of an inbox view, newest activity first, with names, previews and complaint badges."""
    clauses = filters(dialect, scope, query)
    if query.before:
        clauses.append(before_clause(query.before))
    # Preview and badge are select-list subqueries: evaluated only for the rows the LIMIT keeps,
    # and one round trip per page instead of three.
    stmt = (select(Conversation, col(Customer.display_name), _newest_text(), complaint_open())
            .join(Customer, col(Customer.id) == Conversation.customer_id).where(*clauses)
            .order_by(col(Conversation.last_message_at).desc(), col(Conversation.id).desc()).limit(query.limit + 1))
    rows = [Row(c, name, " ".join((body or "").split()), bool(badge))
            for c, name, body, badge in (await session.execute(stmt)).all()]
    page = rows[:query.limit]
    items = [_item(r) for r in page]
    last = page[-1].conversation if page else None
    more = len(rows) > query.limit and last is not None and last.id is not None
    return schemas.ConversationPage(items=items, next_before=encode_cursor(last.last_message_at, last.id)
                                    if more and last is not None and last.id is not None else None)


def _item(row: Row) -> schemas.ConversationListItem:
    item = schemas.ConversationListItem.model_validate(row.conversation)
    item.customer_name = row.customer_name
    item.preview = row.preview
    item.complaint_open = row.complaint_open
    return item


async def counts(session: AsyncSession, scope: Scope) -> schemas.InboxCounts:
    """Open conversations per view, in one pass over the open ones this agent may see."""
    stmt = select(
        func.count().filter(view_clause(scope, "mine")),
        func.count().filter(view_clause(scope, "unassigned")),
        func.count().filter(view_clause(scope, "team")),
        func.count(),
    ).select_from(Conversation).where(col(Conversation.status) == "open", scope.conversation_clause())
    mine, unassigned, team, every = (await session.execute(stmt)).one()
    # Counted from the complaint side: an EXISTS per open conversation would force a heap visit for
    # each, where the counts above stay an index-only scan of (status, team_id, assignee_id).
    with_complaint = (select(func.count(func.distinct(Complaint.conversation_id)))
                      .join(Conversation, col(Conversation.id) == col(Complaint.conversation_id))
                      .where(col(Complaint.status).in_(OPEN_COMPLAINT), col(Conversation.status) == "open",
                             scope.conversation_clause()))
    complaints = int((await session.execute(with_complaint)).scalar_one())
    return schemas.InboxCounts(mine=mine, unassigned=unassigned, team=team, all=every, complaints=complaints)

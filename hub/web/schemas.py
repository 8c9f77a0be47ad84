"""Request and response bodies of the JSON API; unknown fields are refused (extra='forbid')."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_ID = 2**63 - 1  # PostgreSQL BIGINT: a larger id can only be "not found"
PRIORITIES = ("low", "normal", "high", "urgent")
Priority = Literal["low", "normal", "high", "urgent"]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginBody(Body):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=500)


class AgentCreate(Body):
    email: str = Field(min_length=3, max_length=320)
    role: Literal["admin", "agent", "marketer"] = "agent"
    name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=500)


class IdentityIn(Body):
    kind: Literal["email", "phone"]
    value: str = Field(min_length=1, max_length=320)


class CustomerCreate(Body):
    display_name: str = Field(default="", max_length=300)
    language: str = Field(default="it", max_length=10)
    timezone: str = Field(default="Europe/Rome", max_length=64)
    lifecycle_stage: Literal["prospect", "cultivable", "key", "advocate", "sub_zero"] = "prospect"
    tags: list[str] = Field(default_factory=list, max_length=100)
    attributes: dict[str, Any] = Field(default_factory=dict)
    identities: list[IdentityIn] = Field(default_factory=list, max_length=50)


class CustomerUpdate(Body):
    display_name: str | None = Field(default=None, max_length=300)
    language: str | None = Field(default=None, max_length=10)
    timezone: str | None = Field(default=None, max_length=64)
    lifecycle_stage: Literal["prospect", "cultivable", "key", "advocate", "sub_zero"] | None = None
    tags: list[str] | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] | None = None


class MergeBody(Body):
    source_id: int = Field(gt=0, le=MAX_ID)


class StatusBody(Body):
    status: Literal["open", "pending", "snoozed", "resolved"]
    snoozed_until: datetime | None = None


class AssignBody(Body):
    agent_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    team_id: int | None = Field(default=None, gt=0, le=MAX_ID)


class NoteBody(Body):
    body: str = Field(min_length=1, max_length=20000)


class ReplyBody(Body):
    body: str = Field(min_length=1, max_length=100000)
    channel: Literal["email", "sms", "whatsapp"] | None = None
    to: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=998)


class ConversationUpdate(Body):
    """Tags and priority; `add_tags`/`remove_tags` edit the set without racing other agents' edits."""

    tags: list[Tag] | None = Field(default=None, max_length=50)
    add_tags: list[Tag] = Field(default_factory=list, max_length=50)
    remove_tags: list[Tag] = Field(default_factory=list, max_length=50)
    priority: Priority | None = None


class BulkBody(Body):
    """One action over selected conversations; the fields the action needs are required by it."""

    ids: list[Annotated[int, Field(gt=0, le=MAX_ID)]] = Field(min_length=1, max_length=200)
    action: Literal["assign", "status", "tag", "untag", "priority"]
    agent_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    team_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    status: Literal["open", "pending", "resolved"] | None = None
    tag: Tag | None = None
    priority: Priority | None = None


class PresenceBody(Body):
    state: Literal["viewing", "typing", "left"]


class CannedCreate(Body):
    shortcut: str = Field(pattern=r"^[a-z0-9_-]{1,60}$")
    title: str = Field(default="", max_length=200)
    language: str = Field(default="it", pattern=r"^[a-z]{2}$")
    body: str = Field(min_length=1, max_length=20000)


class CannedRenderBody(Body):
    conversation_id: int = Field(gt=0, le=MAX_ID)


# --- query strings ---------------------------------------------------------------------------


class Query(BaseModel):
    """Query-string parameters; unknown ones are ignored (cache busters, tracking)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class InboxQuery(Query):
    view: Literal["mine", "unassigned", "team", "all"] = "all"
    status: Literal["open", "pending", "snoozed", "resolved"] | None = None
    channel: Literal["email", "sms", "phone", "whatsapp"] | None = None
    tag: str | None = Field(default=None, max_length=60)
    priority: Priority | None = None
    complaint: Literal["open"] | None = None
    q: str | None = Field(default=None, max_length=200, description="full-text search over messages")
    assignee: str | None = Field(default=None, pattern=r"^(me|none|[0-9]{1,18})$")
    customer_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    before: str | None = Field(default=None, max_length=200, description="next_before of the previous page")
    limit: int = Field(default=50, ge=1, le=200)


class SearchQuery(Query):
    q: str = Field(min_length=1, max_length=200)
    before: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)


class TimelineQuery(Query):
    before: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class EventsQuery(Query):
    last_event_id: int | None = Field(default=None, ge=0, le=MAX_ID,
                                      description="resume after this id (the Last-Event-ID header wins)")


# --- responses: serialize.py builds every JSON body through these ------------------------------


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorDetail(Out):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Out):
    error: ErrorDetail


class AgentOut(Out):
    id: int
    email: str
    name: str
    role: str
    language: str
    active: bool


class IdentityOut(Out):
    kind: str
    value: str


class CustomerOut(Out):
    id: int
    display_name: str
    language: str
    timezone: str
    lifecycle_stage: str
    tags: list[str]
    attributes: dict[str, Any]
    last_contact_at: datetime | None
    created_at: datetime
    identities: list[IdentityOut] | None = None


class ConversationOut(Out):
    id: int
    customer_id: int
    channel: str
    subject: str | None
    status: str
    assignee_id: int | None
    team_id: int | None
    priority: str
    tags: list[str]
    snoozed_until: datetime | None
    created_at: datetime
    last_message_at: datetime


class MessageOut(Out):
    id: int
    conversation_id: int
    direction: str
    channel: str
    sender: str
    recipient: str
    subject: str | None
    body_text: str
    visible_text: str | None
    flags: list[str]
    delivery_status: str | None
    delivery_detail: str | None
    author_agent_id: int | None
    created_at: datetime
    has_html: bool = False


class TimelineEntryOut(Out):
    id: int
    kind: str
    channel: str | None
    conversation_id: int | None
    ref_id: int | None
    summary: str
    data: dict[str, Any]
    occurred_at: datetime
    message: MessageOut | None = None
    call: dict[str, Any] | None = None


class ConversationListItem(ConversationOut):
    customer_name: str = ""
    preview: str = ""
    complaint_open: bool = False


class ConversationPage(Out):
    items: list[ConversationListItem]
    next_before: str | None


class InboxCounts(Out):
    mine: int
    unassigned: int
    team: int
    all: int
    complaints: int


class TimelinePage(Out):
    items: list[TimelineEntryOut]
    next_before: str | None


class StageChangeOut(Out):
    from_stage: str | None
    to_stage: str
    cause: str
    actor: str | None
    changed_at: datetime


class CaseOut(Out):
    id: int
    workflow: str
    state: str
    opened_at: datetime
    next_states: list[str] = Field(default_factory=list)


class ComplaintOut(Out):
    id: int
    title: str
    severity: str
    status: str
    sla_due_at: datetime | None
    opened_at: datetime


class InterventionOut(Out):
    id: int
    complaint_id: int | None
    description: str
    status: str
    due_at: datetime | None
    assignee_agent_id: int | None
    team_id: int | None


class CustomerPanel(CustomerOut):
    stage_history: list[StageChangeOut] = Field(default_factory=list)
    open_case: CaseOut | None = None
    complaints: list[ComplaintOut] = Field(default_factory=list)
    interventions: list[InterventionOut] = Field(default_factory=list)


class PresenceOut(Out):
    agent_id: int
    agent_name: str
    state: str


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]
    customer: CustomerPanel
    timeline: TimelinePage
    presence: list[PresenceOut]


class SearchHit(Out):
    message_id: int
    conversation_id: int
    customer_id: int
    customer_name: str
    channel: str
    direction: str
    subject: str | None
    snippet: str
    created_at: datetime


class SearchPage(Out):
    items: list[SearchHit]
    next_before: str | None


class BulkResult(Out):
    updated: list[int]
    skipped: list[int]


class CannedOut(Out):
    id: int
    shortcut: str
    title: str
    language: str
    body: str


class CannedList(Out):
    items: list[CannedOut]


class CannedRendered(Out):
    text: str
    missing: list[str]


class PresenceList(Out):
    items: list[PresenceOut]


class CustomerListQuery(Query):
    q: str | None = Field(default=None, max_length=200, description="name, email or phone fragment")
    after: int = Field(default=0, ge=0, le=MAX_ID, description="next_after of the previous page")
    limit: int = Field(default=50, ge=1, le=200)


class CustomerPage(Out):
    items: list[CustomerOut]
    next_after: int | None


class AgentList(Out):
    items: list[AgentOut]


class LoginOut(Out):
    token: str
    agent: AgentOut


class HealthOut(Out):
    status: str
    checks: dict[str, str]

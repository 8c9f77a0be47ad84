"""SQLModel tables for the whole domain; names are the vocabulary of the code (see DESIGN.md).

JSON columns (tags, attributes, payloads) are replaced, never mutated in place, because the
ORM only notices assignment.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, LargeBinary, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.store.types import BigId, JsonType, UTCDateTime, utcnow

LIFECYCLE_STAGES = ("prospect", "cultivable", "key", "advocate", "sub_zero")
ROLES = ("admin", "agent", "marketer")
CONVERSATION_STATUSES = ("open", "pending", "snoozed", "resolved")


def table(model: type[SQLModel]) -> Table:
    """The Core table of a model, for set-based INSERT/UPDATE that skip per-object ORM work."""
    found: Table = model.__table__  # type: ignore[attr-defined]
    return found


def _id() -> Any:
    return Field(default=None, primary_key=True, sa_type=BigId)


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Any:
    if nullable:
        return Field(default=None, foreign_key=target, index=index, sa_type=BigId)
    return Field(foreign_key=target, index=index, sa_type=BigId)


def _when(*, nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UTCDateTime, index=index)
    return Field(default_factory=utcnow, sa_type=UTCDateTime, index=index)


def _json_list() -> Any:
    return Field(default_factory=list, sa_type=JsonType)


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_type=JsonType)


def _text(*, nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=Text)
    return Field(default="", sa_type=Text)


# --- people -------------------------------------------------------------------------------


class Team(SQLModel, table=True):
    id: int | None = _id()
    name: str = Field(unique=True, max_length=120)
    created_at: datetime = _when()


class Agent(SQLModel, table=True):
    id: int | None = _id()
    email: str = Field(unique=True, max_length=320)
    name: str = Field(max_length=200)
    role: str = Field(default="agent", max_length=20)
    password_hash: str | None = Field(default=None, max_length=300)
    language: str = Field(default="en", max_length=10)
    active: bool = True
    online: bool = True
    skills: list[str] = _json_list()
    created_at: datetime = _when()


class TeamMember(SQLModel, table=True):
    team_id: int = Field(foreign_key="team.id", primary_key=True, sa_type=BigId)
    agent_id: int = Field(foreign_key="agent.id", primary_key=True, sa_type=BigId)


class ApiToken(SQLModel, table=True):
    """Only the SHA-256 of a token is stored; the token itself is shown once."""

    id: int | None = _id()
    agent_id: int = _fk("agent.id")
    token_hash: str = Field(unique=True, max_length=64)
    name: str = Field(default="", max_length=200)
    created_at: datetime = _when()
    last_used_at: datetime | None = _when(nullable=True)
    revoked_at: datetime | None = _when(nullable=True)
    expires_at: datetime | None = _when(nullable=True)  # login sessions expire; API tokens may not


# --- customers ----------------------------------------------------------------------------


class Customer(SQLModel, table=True):
    # No index over lifecycle_stage: a stage change then updates the row in place (a HOT update on PostgreSQL).
    id: int | None = _id()
    display_name: str = Field(default="", max_length=300)
    language: str = Field(default="it", max_length=10)
    timezone: str = Field(default="Europe/Rome", max_length=64)
    lifecycle_stage: str = Field(default="prospect", max_length=20)
    tags: list[str] = _json_list()
    attributes: dict[str, Any] = _json_dict()
    merged_into_id: int | None = _fk("customer.id", nullable=True)
    last_contact_at: datetime | None = _when(nullable=True)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class StageChange(SQLModel, table=True):
    """Lifecycle history: the stage on any past date is the last change at or before it."""

    __table_args__ = (Index("ix_stagechange_customer_at", "customer_id", "changed_at"),)

    id: int | None = _id()
    customer_id: int = _fk("customer.id", index=False)
    from_stage: str | None = Field(default=None, max_length=20)
    to_stage: str = Field(max_length=20)
    cause: str = Field(default="agent", max_length=40)
    actor: str | None = Field(default=None, max_length=200)
    changed_at: datetime = _when()


class Identity(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_identity_kind_value"),)

    id: int | None = _id()
    customer_id: int = _fk("customer.id")
    kind: str = Field(max_length=20)
    value: str = Field(max_length=320)
    created_at: datetime = _when()


# --- conversations ------------------------------------------------------------------------


class Inbox(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_inbox_channel_address"),)

    id: int | None = _id()
    name: str = Field(max_length=200)
    channel: str = Field(max_length=20)
    address: str = Field(max_length=320)
    team_id: int | None = _fk("team.id", nullable=True)
    settings: dict[str, Any] = _json_dict()
    created_at: datetime = _when()


class Conversation(SQLModel, table=True):
    __table_args__ = (
        Index("ix_conversation_customer_channel", "customer_id", "channel", "last_message_at"),
        Index("ix_conversation_status_last", "status", "last_message_at", "id"),
        Index("ix_conversation_assignee_last", "assignee_id", "last_message_at", "id"),
        # The shared inbox lists "all" and "team" views newest first (hub/web/inbox.py).
        Index("ix_conversation_last", "last_message_at", "id"),
        Index("ix_conversation_team_last", "team_id", "last_message_at", "id"),
        # Inbox counts read only these columns of the open conversations: an index-only scan.
        Index("ix_conversation_status_owner", "status", "team_id", "assignee_id"),
    )

    id: int | None = _id()
    customer_id: int = _fk("customer.id", index=False)
    inbox_id: int | None = _fk("inbox.id", nullable=True)
    channel: str = Field(max_length=20)
    subject: str | None = Field(default=None, max_length=998)
    status: str = Field(default="open", max_length=20)
    assignee_id: int | None = _fk("agent.id", nullable=True, index=False)
    team_id: int | None = _fk("team.id", nullable=True)
    priority: str = Field(default="normal", max_length=20)
    tags: list[str] = _json_list()
    thread_token: str = Field(unique=True, max_length=64)
    snoozed_until: datetime | None = _when(nullable=True)
    created_at: datetime = _when()
    last_message_at: datetime = _when()
    updated_at: datetime = _when()


class Message(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_message_channel_external_id"),
        Index("ix_message_conversation_at", "conversation_id", "created_at", "id"),
        # Search newest first: for common words walking this beats sorting every match.
        Index("ix_message_created", "created_at", "id"),
    )

    id: int | None = _id()
    conversation_id: int = _fk("conversation.id", index=False)
    customer_id: int = _fk("customer.id")
    direction: str = Field(max_length=10)
    channel: str = Field(max_length=20)
    external_id: str | None = Field(default=None, max_length=998)
    sender: str = Field(default="", max_length=320)
    recipient: str = Field(default="", max_length=320)
    subject: str | None = Field(default=None, max_length=998)
    body_text: str = _text()
    body_html: str | None = _text(nullable=True)
    visible_text: str | None = _text(nullable=True)
    thread_refs: list[str] = _json_list()
    flags: list[str] = _json_list()
    headers: dict[str, Any] = _json_dict()
    delivery_status: str | None = Field(default=None, max_length=20)
    delivery_detail: str | None = _text(nullable=True)
    provider_id: str | None = Field(default=None, max_length=200, index=True)
    author_agent_id: int | None = _fk("agent.id", nullable=True, index=False)
    raw_id: int | None = _fk("rawinput.id", nullable=True, index=False)
    created_at: datetime = _when()


class RawInput(SQLModel, table=True):
    """The bytes or form as received, kept beside the parsed message for replay and audit."""

    id: int | None = _id()
    channel: str = Field(max_length=20)
    content_type: str = Field(default="message/rfc822", max_length=100)
    sha256: str = Field(max_length=64, index=True)
    data: bytes = Field(sa_type=LargeBinary)
    received_at: datetime = _when()


class Attachment(SQLModel, table=True):
    id: int | None = _id()
    message_id: int = _fk("message.id")
    filename: str = Field(max_length=300)
    content_type: str = Field(max_length=200)
    size: int = 0
    sha256: str | None = Field(default=None, max_length=64, index=True)
    storage_ref: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2000)
    inline: bool = False
    content_id: str | None = Field(default=None, max_length=300)


class CallLog(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_calllog_source_external_id"),)

    id: int | None = _id()
    customer_id: int = _fk("customer.id")
    conversation_id: int | None = _fk("conversation.id", nullable=True)
    source: str = Field(default="twilio", max_length=40)
    external_id: str = Field(max_length=200)
    direction: str = Field(max_length=10)
    from_number: str = Field(max_length=64)
    to_number: str = Field(max_length=64)
    started_at: datetime = _when()
    answered_at: datetime | None = _when(nullable=True)
    ended_at: datetime | None = _when(nullable=True)
    duration_s: int = 0
    disposition: str = Field(default="answered", max_length=40)
    recording_url: str | None = Field(default=None, max_length=2000)
    logged_by_agent_id: int | None = _fk("agent.id", nullable=True, index=False)


class TimelineEntry(SQLModel, table=True):
    """One row per thing on a customer's timeline, so the timeline is one indexed keyset scan."""

    __table_args__ = (Index("ix_timeline_customer_at_id", "customer_id", "occurred_at", "id"),)

    id: int | None = _id()
    customer_id: int = _fk("customer.id", index=False)
    conversation_id: int | None = _fk("conversation.id", nullable=True)
    kind: str = Field(max_length=30)
    ref_id: int | None = Field(default=None, sa_type=BigId)
    channel: str | None = Field(default=None, max_length=20)
    summary: str = Field(default="", max_length=500)
    data: dict[str, Any] = _json_dict()
    occurred_at: datetime = _when()


# --- cases, complaints, interventions --------------------------------------------------------


class Case(SQLModel, table=True):
    id: int | None = _id()
    customer_id: int = _fk("customer.id")
    workflow: str = Field(default="hotel_stay", max_length=60)
    state: str = Field(max_length=60)
    data: dict[str, Any] = _json_dict()
    opened_at: datetime = _when()
    closed_at: datetime | None = _when(nullable=True)


class CaseTransition(SQLModel, table=True):
    id: int | None = _id()
    case_id: int = _fk("case.id")
    from_state: str | None = Field(default=None, max_length=60)
    to_state: str = Field(max_length=60)
    actor: str | None = Field(default=None, max_length=200)
    reason: str | None = _text(nullable=True)
    at: datetime = _when()


class Complaint(SQLModel, table=True):
    __table_args__ = (Index("ix_complaint_status_due", "status", "sla_due_at"),)

    id: int | None = _id()
    customer_id: int = _fk("customer.id")
    case_id: int | None = _fk("case.id", nullable=True)
    conversation_id: int | None = _fk("conversation.id", nullable=True)
    message_id: int | None = _fk("message.id", nullable=True, index=False)
    title: str = Field(default="", max_length=300)
    category: str | None = Field(default=None, max_length=60)
    severity: str = Field(default="normal", max_length=20)
    status: str = Field(default="open", max_length=20)
    opened_by: str = Field(default="agent", max_length=200)
    resolution: str | None = _text(nullable=True)
    sla_due_at: datetime | None = _when(nullable=True)
    opened_at: datetime = _when()
    resolved_at: datetime | None = _when(nullable=True)


class Intervention(SQLModel, table=True):
    __table_args__ = (Index("ix_intervention_status_due", "status", "due_at"),)

    id: int | None = _id()
    complaint_id: int | None = _fk("complaint.id", nullable=True)
    customer_id: int | None = _fk("customer.id", nullable=True)
    assignee_agent_id: int | None = _fk("agent.id", nullable=True)
    team_id: int | None = _fk("team.id", nullable=True)
    description: str = _text()
    status: str = Field(default="todo", max_length=20)
    due_at: datetime | None = _when(nullable=True)
    notes: list[dict[str, Any]] = _json_list()
    overdue_notified_at: datetime | None = _when(nullable=True)
    created_at: datetime = _when()
    done_at: datetime | None = _when(nullable=True)


class Survey(SQLModel, table=True):
    """A departure survey sent for a case; answered by SMS digits or the signed web form."""

    __table_args__ = (Index("ix_survey_customer_status", "customer_id", "status"),)

    id: int | None = _id()
    case_id: int = _fk("case.id")
    customer_id: int = _fk("customer.id", index=False)
    channel: str = Field(max_length=20)
    template_name: str = Field(default="departure_survey", max_length=200)
    questions: list[str] = _json_list()
    answers: list[int] = _json_list()
    score: float | None = None
    status: str = Field(default="sent", max_length=20)
    message_id: int | None = _fk("message.id", nullable=True, index=False)
    sent_at: datetime = _when()
    answered_at: datetime | None = _when(nullable=True)


class AssignmentCursor(SQLModel, table=True):
    """Round-robin position per team: the agent who got the last conversation."""

    team_id: int = Field(foreign_key="team.id", primary_key=True, sa_type=BigId)
    last_agent_id: int | None = Field(default=None, sa_type=BigId)
    updated_at: datetime = _when()


# --- analytics (hub/analytics) ---------------------------------------------------------------


class Stay(SQLModel, table=True):
    """A stay or purchase imported from the property system; money in integer cents, so sums are exact."""

    __table_args__ = (
        Index("ix_stay_customer_date", "customer_id", "stay_date"),
        Index("ix_stay_date", "stay_date"),
    )

    id: int | None = _id()
    customer_id: int = _fk("customer.id", index=False)
    external_id: str = Field(unique=True, max_length=200)
    kind: str = Field(default="stay", max_length=20)
    product: str = Field(default="room", max_length=200)
    amount_cents: int = Field(default=0, sa_type=BigId)
    stay_date: date
    nights: int = 0
    source: str = Field(default="csv", max_length=200)
    imported_at: datetime = _when()


class StayTotals(SQLModel, table=True):
    """Per-customer sums of `stay`, kept by database triggers on every insert, update and delete of a stay.

    The classifier reads these instead of aggregating every stay each night; a row exists while
    the customer has at least one stay.
    """

    customer_id: int = Field(primary_key=True, foreign_key="customer.id", sa_type=BigId)
    visits: int = Field(default=0, sa_type=BigId)  # stays and purchases
    stays: int = Field(default=0, sa_type=BigId)  # kind = 'stay' only
    spend_cents: int = Field(default=0, sa_type=BigId)
    last_date: date


class StageRule(SQLModel, table=True):
    """One classifier rule: customers matching `condition` go to `stage` (`keep` leaves them); first match wins."""

    id: int | None = _id()
    position: int = 0
    stage: str = Field(max_length=20)
    condition: dict[str, Any] = _json_dict()
    description: str = _text()
    enabled: bool = True


# --- rules, templates, campaigns -----------------------------------------------------------


class Rule(SQLModel, table=True):
    id: int | None = _id()
    name: str = Field(max_length=200)
    description: str = _text()
    event: str = Field(max_length=60, index=True)
    condition: dict[str, Any] = _json_dict()
    actions: list[dict[str, Any]] = _json_list()
    stop_processing: bool = False
    enabled: bool = True
    position: int = 0
    created_at: datetime = _when()


class Template(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("name", "channel", "language", name="uq_template_name_channel_lang"),)

    id: int | None = _id()
    name: str = Field(max_length=200)
    channel: str = Field(max_length=20)
    language: str = Field(default="it", max_length=10)
    purpose: str = Field(default="marketing", max_length=20)
    subject: str | None = Field(default=None, max_length=998)
    body_text: str = _text()
    body_html: str | None = _text(nullable=True)
    created_at: datetime = _when()


class Segment(SQLModel, table=True):
    id: int | None = _id()
    name: str = Field(unique=True, max_length=200)
    condition: dict[str, Any] = _json_dict()
    created_at: datetime = _when()


class Campaign(SQLModel, table=True):
    id: int | None = _id()
    name: str = Field(max_length=200)
    channel: str = Field(max_length=20)
    status: str = Field(default="draft", max_length=20)
    segment_id: int | None = _fk("segment.id", nullable=True)
    template_name: str = Field(default="", max_length=200)
    scheduled_at: datetime | None = _when(nullable=True)
    local_send_time: str | None = Field(default=None, max_length=5)
    settings: dict[str, Any] = _json_dict()
    created_by_agent_id: int | None = _fk("agent.id", nullable=True, index=False)
    created_at: datetime = _when()
    started_at: datetime | None = _when(nullable=True)
    finished_at: datetime | None = _when(nullable=True)
    # Materialisation progress (hub/campaigns): the last customer id done, and a lease so two
    # schedulers ticking at once do not both walk the segment (the unique row settles any race).
    cursor: int = Field(default=0, sa_type=BigId)
    lease_until: datetime | None = _when(nullable=True)
    materialised_at: datetime | None = _when(nullable=True)


class CampaignRecipient(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_id", "channel", name="uq_recipient_campaign_customer_channel"),
        Index("ix_recipient_campaign_status_id", "campaign_id", "status", "id"),
    )

    id: int | None = _id()
    campaign_id: int = _fk("campaign.id", index=False)
    customer_id: int = _fk("customer.id")
    channel: str = Field(max_length=20)
    address: str = Field(default="", max_length=320)
    variant: str | None = Field(default=None, max_length=20)
    status: str = Field(default="queued", max_length=20)
    send_after: datetime | None = _when(nullable=True)
    attempts: int = 0
    message_id: int | None = _fk("message.id", nullable=True, index=False)
    error: str | None = _text(nullable=True)
    sent_at: datetime | None = _when(nullable=True)
    created_at: datetime = _when()
    # Who holds a `sending` row and since when: a lost worker's rows are re-queued after a lease.
    claimed_at: datetime | None = _when(nullable=True)
    worker: str | None = Field(default=None, max_length=100)
    enqueued_at: datetime | None = _when(nullable=True)


class CampaignEvent(SQLModel, table=True):
    """What happened to a campaign message after sending: opened, clicked, replied, bounced, unsubscribed."""

    __table_args__ = (Index("ix_campaignevent_campaign_kind_at", "campaign_id", "kind", "at"),)

    id: int | None = _id()
    campaign_id: int = _fk("campaign.id", index=False)
    recipient_id: int = _fk("campaignrecipient.id")
    variant: str | None = Field(default=None, max_length=20)
    kind: str = Field(max_length=20)
    detail: str | None = _text(nullable=True)
    at: datetime = _when()


class Consent(SQLModel, table=True):
    """An append-only ledger: the latest row per (customer, channel, purpose) is in force."""

    __table_args__ = (Index("ix_consent_customer_channel_at", "customer_id", "channel", "purpose", "at"),)

    id: int | None = _id()
    customer_id: int = _fk("customer.id", index=False)
    channel: str = Field(max_length=20)
    purpose: str = Field(default="marketing", max_length=20)
    granted: bool
    source: str = Field(max_length=60)
    detail: str | None = _text(nullable=True)
    at: datetime = _when()


class Suppression(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_suppression_channel_address"),)

    id: int | None = _id()
    channel: str = Field(max_length=20)
    address: str = Field(max_length=320)
    reason: str = Field(max_length=60)
    detail: str | None = _text(nullable=True)
    created_at: datetime = _when()


# --- plumbing -----------------------------------------------------------------------------


class OutboxItem(SQLModel, table=True):
    """Work decided inside a transaction, done after it commits; `attempt` makes job ids unique."""

    __table_args__ = (Index("ix_outbox_status_available", "status", "available_at"),)

    id: int | None = _id()
    kind: str = Field(max_length=60)
    payload: dict[str, Any] = _json_dict()
    status: str = Field(default="queued", max_length=20)
    attempt: int = 0
    max_attempts: int = 8
    available_at: datetime = _when()
    claimed_at: datetime | None = _when(nullable=True)
    last_error: str | None = _text(nullable=True)
    result: dict[str, Any] = _json_dict()
    created_at: datetime = _when()
    updated_at: datetime = _when()


class QuarantineItem(SQLModel, table=True):
    """Input that could not be parsed or a job that failed for good, with what is needed to replay it."""

    id: int | None = _id()
    stage: str = Field(max_length=60, index=True)
    channel: str | None = Field(default=None, max_length=20)
    source: str | None = Field(default=None, max_length=500)
    raw: bytes | None = Field(default=None, sa_type=LargeBinary)
    payload: dict[str, Any] = _json_dict()
    error: str = _text()
    traceback: str | None = _text(nullable=True)
    created_at: datetime = _when()
    replayed_at: datetime | None = _when(nullable=True)


class AuditEvent(SQLModel, table=True):
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id", "at"),)

    id: int | None = _id()
    actor: str = Field(max_length=200)
    action: str = Field(max_length=60)
    entity: str = Field(max_length=60)
    entity_id: int | None = Field(default=None, sa_type=BigId)
    data: dict[str, Any] = _json_dict()
    at: datetime = _when()


class DomainEvent(SQLModel, table=True):
    """Events kept for a window so SSE clients can resume with Last-Event-ID and nothing is lost."""

    id: int | None = _id()
    type: str = Field(max_length=60)
    conversation_id: int | None = Field(default=None, sa_type=BigId, index=True)
    customer_id: int | None = Field(default=None, sa_type=BigId)
    team_id: int | None = Field(default=None, sa_type=BigId)
    payload: dict[str, Any] = _json_dict()
    at: datetime = _when(index=True)


class CannedResponse(SQLModel, table=True):
    """A saved reply agents insert with `/shortcut`; `{{ customer.first_name }}`-style variables are filled in."""

    __table_args__ = (UniqueConstraint("shortcut", "language", name="uq_canned_shortcut_language"),)

    id: int | None = _id()
    shortcut: str = Field(max_length=60)
    title: str = Field(default="", max_length=200)
    language: str = Field(default="it", max_length=10)
    body: str = _text()
    created_by: str = Field(default="system", max_length=200)
    created_at: datetime = _when()


class MailboxCheckpoint(SQLModel, table=True):
    """IMAP progress per mailbox: advanced only after the ingest commit."""

    id: int | None = _id()
    mailbox: str = Field(unique=True, max_length=320)
    uidvalidity: int = Field(default=0, sa_type=BigId)
    last_uid: int = Field(default=0, sa_type=BigId)
    updated_at: datetime = _when()

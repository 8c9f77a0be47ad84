"""Fields rules may test beyond those segments share: the event itself and what it is about."""

from __future__ import annotations

from hub.routing.conditions import FIELDS, FieldSpec, FieldType

EVENT_TYPES = (
    "message.received", "conversation.created", "conversation.status_changed", "complaint.opened",
    "complaint.resolved", "intervention.overdue", "call.missed", "case.state_changed", "survey.answered",
    "sla.breached", "customer.stage_changed",
)

RULE_FIELDS = FIELDS.extended([
    FieldSpec("event.type", FieldType.STR, "the event's name, e.g. message.received"),
    FieldSpec("event.depth", FieldType.NUMBER, "how many rule steps led to this event"),
    FieldSpec("event.data", FieldType.DICT, "the event's details; test one with event.data.<key>"),
    FieldSpec("complaint.severity", FieldType.STR, "low, normal, high or critical"),
    FieldSpec("complaint.category", FieldType.STR, "the complaint's category"),
    FieldSpec("complaint.status", FieldType.STR, "open, in_progress, resolved or rejected"),
    FieldSpec("intervention.status", FieldType.STR, "todo, doing, done or cancelled"),
    FieldSpec("intervention.team", FieldType.STR, "the team the intervention was given to"),
    FieldSpec("case.previous_state", FieldType.STR, "the state the case left (case.state_changed)"),
    FieldSpec("survey.score", FieldType.NUMBER, "the average answer of the survey, 1-5"),
    FieldSpec("sla.kind", FieldType.STR, "first_response or resolution (sla.breached)"),
])

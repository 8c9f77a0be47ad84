"""Names of the events routing raises (the core's are in hub.core.events)."""

from __future__ import annotations

COMPLAINT_OPENED = "complaint.opened"
COMPLAINT_STATUS_CHANGED = "complaint.status_changed"
COMPLAINT_RESOLVED = "complaint.resolved"
INTERVENTION_CREATED = "intervention.created"
INTERVENTION_STATUS_CHANGED = "intervention.status_changed"
INTERVENTION_OVERDUE = "intervention.overdue"
CASE_STATE_CHANGED = "case.state_changed"
SURVEY_SENT = "survey.sent"
SURVEY_ANSWERED = "survey.answered"
SLA_BREACHED = "sla.breached"

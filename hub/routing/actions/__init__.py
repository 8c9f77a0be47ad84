"""Rule actions: one small module each, registered by name (see base.ACTIONS)."""

from hub.routing.actions import (  # noqa: F401  (imported for their registrations)
    assign,
    auto_reply,
    create_interventions,
    move_case,
    notify_email,
    open_complaint,
    send_survey,
    set_priority,
    set_stage,
    set_status,
    tags,
    webhook,
)
from hub.routing.actions.base import (
    ACTIONS,
    ActionContext,
    ActionError,
    ActionSpec,
    ActionType,
    Params,
    deeper,
    parse_action,
    parse_actions,
)

__all__ = ["ACTIONS", "ActionContext", "ActionError", "ActionSpec", "ActionType", "Params", "deeper",
           "parse_action", "parse_actions"]

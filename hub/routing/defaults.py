"""The rules the demo ships: complaint words in Italian and English open a complaint, and so on."""

from __future__ import annotations

from typing import Any

COMPLAINT_WORDS = [
    "reclamo", "lamentela", "rotto", "rotta", "guasto", "sporco", "sporca", "non funziona", "rumore", "inaccettabile",
    "complaint", "broken", "dirty", "not working", "noisy", "unacceptable", "disappointed",
]

DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "complaint words",
        "description": "Complaint words in Italian or English open a complaint, go to reception and "
                       "create work for housekeeping and maintenance.",
        "event": "message.received",
        "position": 10,
        "condition": {"all": [
            {"field": "message.is_autoreply", "op": "equals", "value": False},
            {"any": [
                {"field": "message.subject", "op": "contains_any", "value": COMPLAINT_WORDS},
                {"field": "message.visible_text", "op": "contains_any", "value": COMPLAINT_WORDS},
            ]},
        ]},
        "actions": [
            {"type": "open_complaint", "severity": "high", "category": "room"},
            {"type": "set_priority", "priority": "high"},
            {"type": "assign", "team": "Reception", "strategy": "round_robin"},
            {"type": "create_interventions", "items": [
                {"team": "Housekeeping", "description": "Check the room and make it right", "due_in": "2h"},
                {"team": "Maintenance", "description": "Inspect and repair what is broken", "due_in": "4h"},
            ]},
            {"type": "tags", "add": ["complaint"]},
        ],
    },
    {
        "name": "overdue interventions escalate",
        "description": "An overdue intervention raises the conversation to urgent.",
        "event": "intervention.overdue",
        "position": 20,
        "condition": {"all": []},
        "actions": [{"type": "set_priority", "priority": "urgent"}],
    },
]

"""Case workflows as data: states, transitions with the roles that may take them, entry actions,
automatic triggers, and the survey scoring that chooses how a stay closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.events import Event, EventHandler, publish
from hub.routing import events
from hub.routing.errors import NotAllowed, TransitionError
from hub.store.models import AuditEvent, Case, CaseTransition, Complaint, TimelineEntry
from hub.store.types import utcnow

SYSTEM = "system"  # rules and triggers: any defined transition, no role needed


@dataclass(frozen=True, slots=True)
class Trigger:
    """Move the case to `target` when `on` happens (and, for `when`, a check holds)."""

    on: str
    target: str
    sources: tuple[str, ...] = ()
    when: str = "always"  # always | no_open_complaints | scoring


@dataclass(frozen=True, slots=True)
class Scoring:
    """How survey answers (1-5) and complaints during the case choose its closing state."""

    questions: tuple[str, ...]
    success_min_average: float
    complaint_means_failure: bool
    success: str
    failure: str

    def closing_state(self, score: float, had_complaint: bool) -> str:
        """The state a case closes in for this average score."""
        if score < self.success_min_average or (had_complaint and self.complaint_means_failure):
            return self.failure
        return self.success


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    initial: str
    states: tuple[str, ...]
    final: tuple[str, ...]
    transitions: Mapping[tuple[str, str], frozenset[str]]
    entry_actions: Mapping[str, tuple[dict[str, Any], ...]]
    triggers: tuple[Trigger, ...]
    scoring: Scoring | None

    def allowed(self, state: str, role: str = SYSTEM) -> list[str]:
        """States reachable from `state` by an actor with this role."""
        return [to for (src, to), roles in self.transitions.items()
                if src == state and (role == SYSTEM or role in roles)]

    def check(self, state: str, target: str, role: str = SYSTEM) -> None:
        """Raise TransitionError (no such move) or NotAllowed (not for this role)."""
        if (state, target) not in self.transitions:
            raise TransitionError(f"case ({self.name})", state, target, self.allowed(state, role))
        if role != SYSTEM and role not in self.transitions[(state, target)]:
            raise NotAllowed(f"the role {role} may not move a {self.name} case from {state} to {target}")


def from_data(data: Mapping[str, Any]) -> Workflow:
    """Build a workflow from its JSON description, checking that every state it names exists."""
    states = tuple(data["states"])
    transitions = {(t["from"], t["to"]): frozenset(t.get("roles", ("admin",))) for t in data["transitions"]}
    named = {s for pair in transitions for s in pair} | {data["initial"], *data.get("final", ())}
    named |= {t["to"] for t in data.get("triggers", ()) if t["to"] != "$scoring"}
    if unknown := named - set(states):
        raise ValueError(f"workflow {data['name']!r} names unknown states {sorted(unknown)}")
    scoring = data.get("scoring")
    return Workflow(
        name=data["name"], initial=data["initial"], states=states, final=tuple(data.get("final", ())),
        transitions=transitions,
        entry_actions={k: tuple(v) for k, v in data.get("entry_actions", {}).items()},
        triggers=tuple(Trigger(t["on"], t["to"], tuple(t.get("from", ())), t.get("when", "always"))
                       for t in data.get("triggers", ())),
        scoring=Scoring(tuple(scoring["questions"]), float(scoring["success_min_average"]),
                        bool(scoring.get("complaint_means_failure", True)), scoring["success"],
                        scoring["failure"]) if scoring else None,
    )


HOTEL_STAY_DATA: dict[str, Any] = {
    "name": "hotel_stay",
    "initial": "arrived",
    "states": ["arrived", "services_ok", "complaint", "departure_survey", "closed_success",
               "closed_with_complaints"],
    "final": ["closed_success", "closed_with_complaints"],
    "transitions": [
        {"from": "arrived", "to": "services_ok", "roles": ["admin", "agent"]},
        {"from": "arrived", "to": "complaint", "roles": ["admin", "agent"]},
        {"from": "services_ok", "to": "complaint", "roles": ["admin", "agent"]},
        {"from": "complaint", "to": "services_ok", "roles": ["admin"]},
        {"from": "services_ok", "to": "departure_survey", "roles": ["admin", "agent"]},
        {"from": "complaint", "to": "departure_survey", "roles": ["admin", "agent"]},
        {"from": "departure_survey", "to": "closed_success", "roles": ["admin"]},
        {"from": "departure_survey", "to": "closed_with_complaints", "roles": ["admin"]},
    ],
    "entry_actions": {"departure_survey": [{"type": "send_survey", "channel": "auto"}]},
    "triggers": [
        {"on": events.COMPLAINT_OPENED, "to": "complaint", "from": ["arrived", "services_ok"]},
        {"on": events.COMPLAINT_RESOLVED, "to": "services_ok", "from": ["complaint"],
         "when": "no_open_complaints"},
        {"on": events.SURVEY_ANSWERED, "to": "$scoring", "from": ["departure_survey"], "when": "scoring"},
    ],
    "scoring": {
        "questions": ["How was your stay overall?", "How clean was your room?", "How helpful was our staff?"],
        "success_min_average": 4.0, "complaint_means_failure": True,
        "success": "closed_success", "failure": "closed_with_complaints",
    },
}

WORKFLOWS: dict[str, Workflow] = {"hotel_stay": from_data(HOTEL_STAY_DATA)}


def workflow_of(case: Case) -> Workflow:
    workflow = WORKFLOWS.get(case.workflow)
    if workflow is None:
        raise LookupError(f"unknown workflow {case.workflow!r}")
    return workflow


async def open_case(session: AsyncSession, customer_id: int, workflow: str, *, actor: str) -> Case:
    """Start a case in its workflow's initial state."""
    flow = WORKFLOWS.get(workflow)
    if flow is None:
        raise LookupError(f"unknown workflow {workflow!r}")
    case = Case(customer_id=customer_id, workflow=workflow, state=flow.initial)
    session.add(case)
    await session.flush()
    assert case.id is not None
    session.add(CaseTransition(case_id=case.id, from_state=None, to_state=flow.initial, actor=actor))
    return case


async def move_case(
    session: AsyncSession, case: Case, target: str, *, actor: str, role: str = SYSTEM, reason: str | None = None,
    handlers: tuple[EventHandler, ...] = (),
) -> None:
    """Take one transition, record it and publish `case.state_changed` (entry actions follow it)."""
    workflow_of(case).check(case.state, target, role)
    assert case.id is not None
    previous, case.state = case.state, target
    if target in workflow_of(case).final:
        case.closed_at = utcnow()
    session.add(CaseTransition(case_id=case.id, from_state=previous, to_state=target, actor=actor, reason=reason))
    data = {"case_id": case.id, "workflow": case.workflow, "from": previous, "to": target, "actor": actor}
    session.add(AuditEvent(actor=actor, action="case.state", entity="case", entity_id=case.id, data=data))
    session.add(TimelineEntry(customer_id=case.customer_id, kind="case", ref_id=case.id,
                              summary=f"{case.workflow}: {previous} → {target}", data=data))
    await publish(session, Event(events.CASE_STATE_CHANGED, case.customer_id, data=data), handlers)


async def open_complaints_of_case(session: AsyncSession, case_id: int) -> int:
    found = await session.execute(
        select(func.count()).select_from(Complaint)
        .where(col(Complaint.case_id) == case_id, col(Complaint.status).in_(("open", "in_progress")))
    )
    return int(found.scalar_one())


async def had_complaint(session: AsyncSession, case_id: int) -> bool:
    """Whether any complaint was opened during this case."""
    found = await session.execute(select(func.count()).select_from(Complaint).where(col(Complaint.case_id) == case_id))
    return bool(found.scalar_one())


async def trigger_target(session: AsyncSession, case: Case, trigger: Trigger, event: Event) -> str | None:
    """Where this trigger moves the case now, or None when it does not apply."""
    if trigger.sources and case.state not in trigger.sources:
        return None
    assert case.id is not None
    if trigger.when == "no_open_complaints":
        return trigger.target if await open_complaints_of_case(session, case.id) == 0 else None
    if trigger.when == "scoring":
        scoring = workflow_of(case).scoring
        score = event.data.get("score")
        if scoring is None or not isinstance(score, int | float):
            return None
        return scoring.closing_state(float(score), await had_complaint(session, case.id))
    return trigger.target

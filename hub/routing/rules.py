"""The rule chain: compile stored rules once, then `decide` which actions an event calls for.

Like Mailman's chains, the walk records every rule's hit or miss and why, so the same code
answers "what happens" (ingest) and "why" (`hub rules test`, the API dry-run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.core.events import Event
from hub.routing.actions import ActionError, ActionSpec, parse_actions
from hub.routing.conditions import (
    Condition,
    ConditionError,
    Explanation,
    Facts,
    Predicate,
    compile_predicate,
    explain,
    validate,
)
from hub.routing.fields import EVENT_TYPES, RULE_FIELDS
from hub.store.models import Rule

DEFAULT_MAX_DEPTH = 4


class RuleError(ValueError):
    """A rule that cannot be used; `.errors` lists (json_path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A validated rule with its predicate compiled once."""

    id: int | None
    name: str
    event: str
    condition: Condition
    predicate: Predicate
    actions: tuple[ActionSpec, ...]
    stop_processing: bool = False
    enabled: bool = True
    position: int = 0


@dataclass(frozen=True, slots=True)
class Action:
    """One action a rule asks for; `apply` performs it."""

    rule_id: int | None
    rule_name: str
    spec: ActionSpec


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one rule made of one event."""

    rule_id: int | None
    rule_name: str
    hit: bool
    reason: str
    explanation: Explanation | None = None


@dataclass
class Record:
    """Hits and misses of one walk (Mailman keeps these on the message); `explain` adds the why."""

    explain: bool = False
    hits: list[CompiledRule] = field(default_factory=list)
    misses: list[CompiledRule] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)


def _condition(data: object, errors: list[tuple[str, str]]) -> Condition | None:
    try:
        return validate(data if data else {"all": []}, fields=RULE_FIELDS)
    except ConditionError as exc:
        errors.extend((path.replace("$", "$.condition", 1), msg) for path, msg in exc.errors)
        return None


def check_rule(data: Mapping[str, Any]) -> tuple[Condition, tuple[ActionSpec, ...]]:
    """Validate a rule's event, condition and actions, listing every problem with its JSON path."""
    errors: list[tuple[str, str]] = []
    if data.get("event") not in EVENT_TYPES:
        errors.append(("$.event", f"unknown event {data.get('event')!r}; one of {', '.join(EVENT_TYPES)}"))
    condition = _condition(data.get("condition"), errors)
    actions: tuple[ActionSpec, ...] = ()
    try:
        actions = parse_actions(data.get("actions", []))
    except ActionError as exc:
        errors.extend(exc.errors)
    if errors or condition is None:
        raise RuleError(errors)
    return condition, actions


def compile_rule(row: Rule) -> CompiledRule:
    """Compile a stored rule; raises RuleError when it no longer validates."""
    condition, actions = check_rule({"event": row.event, "condition": row.condition, "actions": row.actions})
    return CompiledRule(
        row.id, row.name, row.event, condition, compile_predicate(condition), actions,
        row.stop_processing, row.enabled, row.position,
    )


def ordered(rules: Iterable[CompiledRule]) -> list[CompiledRule]:
    """Rules in the order the chain walks them: position, then id."""
    return sorted(rules, key=lambda r: (r.position, r.id or 0))


def decide(
    rules: Sequence[CompiledRule], event: Event, facts: Facts, record: Record | None = None, *,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Action]:
    """The actions the ordered rules call for on this event; pure, and `record` says why."""
    if event.depth > max_depth:
        if record is not None:
            record.verdicts.append(Verdict(None, "loop guard", False, f"event depth {event.depth} > {max_depth}"))
        return []
    actions: list[Action] = []
    stopped_by: str | None = None
    verdicts = record.verdicts if record is not None and record.explain else None
    for rule in rules:
        if stopped_by is not None or not rule.enabled or rule.event != event.type:
            if verdicts is not None:
                verdicts.append(_skipped(rule, event, stopped_by))
            continue
        hit = rule.predicate(facts)
        if record is not None:
            # Plain appends on the hot path; the full explanation only when someone asked why.
            (record.hits if hit else record.misses).append(rule)
            if verdicts is not None:
                verdicts.append(Verdict(rule.id, rule.name, hit, "condition held" if hit else
                                        "condition did not hold", explain(rule.condition, facts)))
        if hit:
            actions.extend(Action(rule.id, rule.name, spec) for spec in rule.actions)
            if rule.stop_processing:
                stopped_by = rule.name
    return actions


def _skipped(rule: CompiledRule, event: Event, stopped_by: str | None) -> Verdict:
    if stopped_by is not None:
        reason = f"not reached: {stopped_by!r} stops processing"
    elif not rule.enabled:
        reason = "disabled"
    else:
        reason = f"listens to {rule.event}, not {event.type}"
    return Verdict(rule.id, rule.name, False, reason)

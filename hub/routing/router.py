"""The event handler that routing adds to the runtime: surveys, workflow triggers, then the rules."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.events import MESSAGE_RECEIVED, Event, EventHandler
from hub.routing import events, surveys, workflows
from hub.routing.actions import ActionError, deeper, parse_actions
from hub.routing.apply import apply
from hub.routing.complaints import open_case_of
from hub.routing.conditions import All, AnyOf, Condition, Leaf, Not
from hub.routing.facts import load_facts
from hub.routing.fields import EVENT_TYPES
from hub.routing.hours import BusinessHours
from hub.routing.rules import Action, CompiledRule, Record, RuleError, compile_rule, decide, ordered
from hub.settings import Settings
from hub.store.models import AuditEvent, Case, Rule
from hub.store.types import utcnow

log = logging.getLogger(__name__)

ROUTED = frozenset(EVENT_TYPES)


def fields_of(cond: Condition) -> set[str]:
    """Every field name a condition tests."""
    if isinstance(cond, All | AnyOf):
        return set().union(*(fields_of(c) for c in cond.children)) if cond.children else set()
    if isinstance(cond, Not):
        return fields_of(cond.child)
    assert isinstance(cond, Leaf)
    return {cond.field.parent or cond.field.name}


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    fields: frozenset[str]


class RuleCache:
    """Compiled enabled rules by event; reloaded after `ttl` seconds or when invalidated."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._sets: dict[str, RuleSet] | None = None
        self._loaded = 0.0

    def invalidate(self) -> None:
        self._sets = None

    async def get(self, session: AsyncSession, event_type: str) -> RuleSet:
        if self._sets is None or self.clock() - self._loaded > self.ttl:
            self._sets = await self._load(session)
            self._loaded = self.clock()
        return self._sets.get(event_type, RuleSet((), frozenset()))

    async def _load(self, session: AsyncSession) -> dict[str, RuleSet]:
        rows = (await session.execute(select(Rule).where(col(Rule.enabled).is_(True)))).scalars()
        compiled: list[CompiledRule] = []
        for row in rows:
            try:
                compiled.append(compile_rule(row))
            except RuleError as exc:
                log.warning("rule %s (%s) skipped: %s", row.id, row.name, exc)
        by_event: dict[str, list[CompiledRule]] = {}
        for rule in ordered(compiled):
            by_event.setdefault(rule.event, []).append(rule)
        return {name: RuleSet(tuple(rules), frozenset().union(*(fields_of(r.condition) for r in rules)))
                for name, rules in by_event.items()}


class Router:
    """Called for every domain event inside its transaction."""

    def __init__(self, settings: Settings, handlers: list[EventHandler]) -> None:
        self.settings = settings
        self.handlers = handlers  # the runtime's live list, so later plugins are seen too
        self.hours = BusinessHours.parse(settings.business_hours, settings.business_timezone)
        self.cache = RuleCache(settings.rules_cache_seconds)
        self._wrapped: dict[int, tuple[tuple[EventHandler, ...], tuple[EventHandler, ...]]] = {}

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        if event.type not in ROUTED:
            return
        if event.depth > self.settings.rules_max_depth:
            session.add(AuditEvent(actor="rules", action="rules.loop_guard", entity="event", data={
                "event": event.type, "depth": event.depth, "customer_id": event.customer_id}))
            return
        handlers = self._deeper(event.depth + 1)
        if event.type == MESSAGE_RECEIVED:
            await surveys.answer_by_sms(session, event, handlers)
        await self._workflow(session, event, handlers)
        await self.run_rules(session, event, handlers)

    def _deeper(self, depth: int) -> tuple[EventHandler, ...]:
        """The handlers for events raised at `depth`, wrapped again only when the live list changed.

        Bulk publishers (the classifier) call the router once per event, most often for nothing."""
        live = tuple(self.handlers)
        known = self._wrapped.get(depth)
        if known is None or known[0] != live:
            known = self._wrapped[depth] = (live, deeper(live, depth))
        return known[1]

    async def run_rules(self, session: AsyncSession, event: Event, handlers: tuple[EventHandler, ...]) -> None:
        ruleset = await self.cache.get(session, event.type)
        if not ruleset.rules:
            return
        now = utcnow()
        facts = await load_facts(session, event, now=now, hours=self.hours, needed=ruleset.fields)
        record = Record()
        actions = decide(ruleset.rules, event, facts, record, max_depth=self.settings.rules_max_depth)
        failures = await apply(session, actions, event=event, settings=self.settings, handlers=handlers, now=now)
        if record.hits or failures:
            session.add(AuditEvent(
                actor="rules", action="rules.evaluated", entity="message" if event.message_id else "event",
                entity_id=event.message_id, data={
                    "event": event.type, "conversation_id": event.conversation_id,
                    "hits": [r.name for r in record.hits], "misses": len(record.misses),
                    "failed": [f.rule_name for f in failures]},
            ))

    async def _workflow(self, session: AsyncSession, event: Event, handlers: tuple[EventHandler, ...]) -> None:
        case = await _case_for(session, event)
        if case is None:
            return
        flow = workflows.workflow_of(case)
        if event.type == events.CASE_STATE_CHANGED:
            await self._enter(session, event, flow, handlers)
            return
        for trigger in flow.triggers:
            if trigger.on != event.type or case.closed_at is not None:
                continue
            target = await workflows.trigger_target(session, case, trigger, event)
            if target is not None and target in flow.allowed(case.state):
                await workflows.move_case(session, case, target, actor=f"workflow:{flow.name}", handlers=handlers)
                return

    async def _enter(self, session: AsyncSession, event: Event, flow: workflows.Workflow,
                     handlers: tuple[EventHandler, ...]) -> None:
        """Entry actions of the state just entered run like a rule named after the workflow."""
        entry: tuple[dict[str, Any], ...] = flow.entry_actions.get(str(event.data.get("to")), ())
        if not entry:
            return
        try:
            specs = parse_actions(list(entry))
        except ActionError as exc:
            log.error("workflow %s has bad entry actions: %s", flow.name, exc)
            return
        actions = [Action(None, f"workflow:{flow.name}", spec) for spec in specs]
        await apply(session, actions, event=event, settings=self.settings, handlers=handlers, now=utcnow())


async def _case_for(session: AsyncSession, event: Event) -> Case | None:
    case_id = event.data.get("case_id")
    if isinstance(case_id, int):
        return await session.get(Case, case_id)
    if event.customer_id is None or event.type not in (events.COMPLAINT_OPENED, events.SURVEY_ANSWERED):
        return None
    return await open_case_of(session, event.customer_id)

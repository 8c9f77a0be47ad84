"""What the rules would do with a stored or a given message, and why; nothing is changed."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from hub.core.events import MESSAGE_RECEIVED, Event
from hub.routing.conditions import Explanation
from hub.routing.facts import load_facts, message_facts, time_facts
from hub.routing.hours import BusinessHours
from hub.routing.rules import CompiledRule, Record, RuleError, compile_rule, decide, ordered
from hub.settings import Settings
from hub.store.models import Message, Rule


async def all_rules(session: AsyncSession) -> tuple[list[CompiledRule], list[dict[str, Any]]]:
    """Every stored rule compiled, and the ones that no longer validate with their errors."""
    compiled: list[CompiledRule] = []
    broken: list[dict[str, Any]] = []
    for row in (await session.execute(select(Rule))).scalars():
        try:
            compiled.append(compile_rule(row))
        except RuleError as exc:
            broken.append({"id": row.id, "name": row.name, "errors": exc.errors})
    return ordered(compiled), broken


def _tree(node: Explanation | None) -> dict[str, Any] | None:
    return None if node is None else asdict(node)


async def dry_run(
    session: AsyncSession, settings: Settings, now: datetime, *, message_id: int | None = None,
    text: str | None = None, subject: str | None = None, channel: str = "email",
) -> dict[str, Any]:
    """Which rules would fire on `message.received` for this message, each condition's values shown."""
    hours = BusinessHours.parse(settings.business_hours, settings.business_timezone)
    if message_id is not None:
        message = await session.get(Message, message_id)
        if message is None:
            raise LookupError(f"no message {message_id}")
        event = Event(MESSAGE_RECEIVED, message.customer_id, message.conversation_id, message.id,
                      data={"channel": message.channel})
        facts = await load_facts(session, event, now=now, hours=hours)
    else:
        message = Message(conversation_id=0, customer_id=0, direction="in", channel=channel, subject=subject,
                          body_text=text or "")
        event = Event(MESSAGE_RECEIVED, data={"channel": channel})
        facts = {**time_facts(now, hours), **message_facts(message)}
    rules, broken = await all_rules(session)
    record = Record(explain=True)
    actions = decide(rules, event, facts, record, max_depth=settings.rules_max_depth)
    return {
        "event": event.type, "message_id": message_id,
        "actions": [{"rule": a.rule_name, **a.spec.dump()} for a in actions],
        "rules": [{"id": v.rule_id, "name": v.rule_name, "hit": v.hit, "reason": v.reason,
                   "explanation": _tree(v.explanation)} for v in record.verdicts],
        "broken": broken,
    }


def render(result: dict[str, Any]) -> str:
    """The dry-run as text for `hub rules test`."""
    lines = [f"event {result['event']}"]
    for verdict in result["rules"]:
        lines.append(f"{'HIT ' if verdict['hit'] else 'miss'} {verdict['name']}: {verdict['reason']}")
        if verdict["explanation"]:
            lines.append(_explained(verdict["explanation"], 2))
    lines += [f"  -> {a['rule']}: {a['type']}" for a in result["actions"]] or ["  (no actions)"]
    lines += [f"BROKEN {b['name']}: {b['errors']}" for b in result["broken"]]
    return "\n".join(lines)


def _explained(node: dict[str, Any], indent: int) -> str:
    mark = "✓" if node["result"] else "✗"
    pad = " " * indent
    if node["kind"] != "leaf":
        return "\n".join([f"{pad}{mark} {node['kind']}", *(_explained(c, indent + 2) for c in node["children"])])
    return f"{pad}{mark} {node['field']} {node['op']} {node['expected']!r} (saw {str(node['actual'])[:80]!r})"

"""Performing decided actions inside the caller's transaction, one SAVEPOINT per rule.

A rule whose action fails is rolled back to its savepoint, recorded and skipped; the message and
the other rules' work stay, so nothing a customer sent is ever lost to a bad rule.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.events import Event, EventHandler
from hub.routing.actions import ACTIONS, ActionContext
from hub.routing.errors import NotAllowed
from hub.routing.rules import Action
from hub.settings import Settings
from hub.store.models import AuditEvent

log = logging.getLogger(__name__)

# ValueError covers ActionError, TransitionError, ReplyError and RenderError: bad data, not bugs.
RULE_FAILURES = (ValueError, LookupError, NotAllowed, SQLAlchemyError)


@dataclass(frozen=True, slots=True)
class Failure:
    rule_id: int | None
    rule_name: str
    action: str
    error: str


async def _restore(session: AsyncSession) -> None:
    # A rolled-back savepoint expires what it touched; reload now, since lazy loads cannot run in async.
    for obj in list(session.identity_map.values()):
        state = inspect(obj)
        if state.expired_attributes and state.persistent:
            await session.refresh(obj)


async def apply(
    session: AsyncSession, actions: Sequence[Action], *, event: Event, settings: Settings,
    handlers: tuple[EventHandler, ...], now: datetime,
) -> list[Failure]:
    """Run each rule's actions in a savepoint; failed rules are audited and skipped."""
    failures: list[Failure] = []
    rows: dict[tuple[type[Any], int], Any] = {}
    for (rule_id, rule_name), group in groupby(actions, key=lambda a: (a.rule_id, a.rule_name)):
        ctx = ActionContext(session, event, settings, handlers, now, actor=f"rule:{rule_name}", rows=rows)
        current = "?"
        try:
            async with session.begin_nested():
                for item in group:
                    current = item.spec.name
                    await ACTIONS[item.spec.name].run(ctx, item.spec.params)
        except RULE_FAILURES as exc:
            failure = Failure(rule_id, rule_name, current, f"{type(exc).__name__}: {exc}")
            failures.append(failure)
            log.info("rule %r failed on %s at %s: %s", rule_name, event.type, current, exc)
            await _restore(session)
            session.add(AuditEvent(actor=ctx.actor, action="rule.failed", entity="rule", entity_id=rule_id,
                                   data={"event": event.type, "message_id": event.message_id,
                                         "conversation_id": event.conversation_id, "action": current,
                                         "error": failure.error}))
    return failures

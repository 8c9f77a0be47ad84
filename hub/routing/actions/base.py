"""What every action unit provides, the registry by name, and the context actions run in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.events import Event, EventHandler
from hub.settings import Settings
from hub.store.models import Agent, Case, Conversation, Customer, Message, Team

MAX_ACTIONS = 50


class Params(BaseModel):
    """Base of every action's parameters: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ActionError(ValueError):
    """Bad action data (at validation) or an action that cannot run (at apply); lists JSON paths."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))


def fail(message: str, path: str = "$") -> ActionError:
    """An apply-time failure of the running action."""
    return ActionError([(path, message)])


@dataclass
class ActionContext:
    """The transaction and event an action runs for; `state` passes results between one rule's actions."""

    session: AsyncSession
    event: Event
    settings: Settings
    handlers: tuple[EventHandler, ...]
    now: datetime
    actor: str
    state: dict[str, Any] = field(default_factory=dict)
    # Rows loaded for this event, shared by its rules: the session's identity map holds rows only
    # weakly, so without a strong reference each rule would load them again.
    rows: dict[tuple[type[Any], int], Any] = field(default_factory=dict)

    async def _row(self, model: type[Any], row_id: int | None) -> Any:
        if row_id is None:
            return None
        key = (model, row_id)
        if key not in self.rows:
            self.rows[key] = await self.session.get(model, row_id)
        return self.rows[key]

    async def conversation(self) -> Conversation | None:
        row: Conversation | None = await self._row(Conversation, self.event.conversation_id)
        return row

    async def customer(self) -> Customer | None:
        row: Customer | None = await self._row(Customer, self.event.customer_id)
        return row

    async def message(self) -> Message | None:
        row: Message | None = await self._row(Message, self.event.message_id)
        return row

    async def case(self) -> Case | None:
        """The customer's open case (the newest, if several)."""
        if self.event.customer_id is None:
            return None
        found = await self.session.execute(
            select(Case).where(col(Case.customer_id) == self.event.customer_id, col(Case.closed_at).is_(None))
            .order_by(col(Case.id).desc()).limit(1)
        )
        return found.scalar_one_or_none()


Run = Callable[[ActionContext, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ActionType:
    """One registered action: name, a line for the rule editor, its parameter model and its effect."""

    name: str
    description: str
    params: type[Params]
    run: Run


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A validated action of a rule: its type name and parsed parameters."""

    name: str
    params: Params

    def dump(self) -> dict[str, Any]:
        return {"type": self.name, **self.params.model_dump(mode="json", exclude_defaults=True)}


ACTIONS: dict[str, ActionType] = {}


def action(name: str, description: str, params: type[Params]) -> Callable[[Run], Run]:
    """Register the decorated coroutine as the action `name`."""

    def register(run: Run) -> Run:
        if name in ACTIONS:
            raise ValueError(f"action {name!r} is already registered")
        ACTIONS[name] = ActionType(name, description, params, run)
        return run

    return register


def parse_action(data: object, path: str = "$") -> ActionSpec:
    """Validate one `{"type": ..., **params}` object."""
    if not isinstance(data, dict):
        raise ActionError([(path, 'expected an object like {"type": "assign", ...}')])
    kind = ACTIONS.get(str(data.get("type")))
    if kind is None:
        raise ActionError([(f"{path}.type", f"unknown action {data.get('type')!r}; one of "
                                            f"{', '.join(sorted(ACTIONS))}")])
    try:
        params = kind.params.model_validate({k: v for k, v in data.items() if k != "type"})
    except ValidationError as exc:
        raise ActionError([
            (".".join([path, *(str(p) for p in err["loc"])]), err["msg"]) for err in exc.errors()
        ]) from None
    return ActionSpec(kind.name, params)


def parse_actions(data: object) -> tuple[ActionSpec, ...]:
    """Validate a rule's action list, collecting every error."""
    if not isinstance(data, list):
        raise ActionError([("$.actions", "expected a list of actions")])
    if len(data) > MAX_ACTIONS:
        raise ActionError([("$.actions", f"at most {MAX_ACTIONS} actions")])
    specs: list[ActionSpec] = []
    errors: list[tuple[str, str]] = []
    for i, item in enumerate(data):
        try:
            specs.append(parse_action(item, f"$.actions[{i}]"))
        except ActionError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ActionError(errors)
    return tuple(specs)


def deeper(handlers: tuple[EventHandler, ...], depth: int) -> tuple[EventHandler, ...]:
    """Handlers that see events raised by an action one level deeper, so the loop guard can count."""

    def wrap(handler: EventHandler) -> EventHandler:
        async def bumped(session: AsyncSession, event: Event) -> None:
            if event.depth < depth:
                event = replace(event, depth=depth)
            await handler(session, event)

        return bumped

    return tuple(wrap(h) for h in handlers)


async def team_id(ctx: ActionContext, name: str) -> int:
    """The id of the team with this name; a missing team fails the rule."""
    found = (await ctx.session.execute(select(col(Team.id)).where(col(Team.name) == name))).scalar_one_or_none()
    if found is None:
        raise fail(f"no team named {name!r}", "team")
    return int(found)


async def agent_id(ctx: ActionContext, email: str) -> int:
    """The id of the active agent with this email; a missing agent fails the rule."""
    found = (await ctx.session.execute(
        select(col(Agent.id)).where(col(Agent.email) == email.lower(), col(Agent.active).is_(True))
    )).scalar_one_or_none()
    if found is None:
        raise fail(f"no active agent {email!r}", "agent")
    return int(found)

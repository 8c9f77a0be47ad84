"""Rules API: CRUD for admins, the editor's catalogue, and the dry-run that explains decisions."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import Field
from sqlmodel import col, select

from hub.keys import RUNTIME
from hub.routing import dryrun
from hub.routing.actions import ACTIONS
from hub.routing.conditions import OPERATORS
from hub.routing.fields import EVENT_TYPES, RULE_FIELDS
from hub.routing.rules import RuleError, check_rule
from hub.routing.wiring import rules_changed
from hub.store.models import Rule
from hub.store.types import utcnow
from hub.web.auth import requires
from hub.web.errors import ApiError, bad_request, not_found, parse_body
from hub.web.params import path_id
from hub.web.schemas import Body


class RuleBody(Body):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    event: str = Field(min_length=1, max_length=60)
    condition: dict[str, Any] = Field(default_factory=dict)
    actions: list[dict[str, Any]] = Field(default_factory=list)
    stop_processing: bool = False
    enabled: bool = True
    position: int = Field(default=0, ge=0, le=1_000_000)


class DryRunBody(Body):
    message_id: int | None = Field(default=None, gt=0)
    text: str | None = Field(default=None, max_length=100_000)
    subject: str | None = Field(default=None, max_length=998)
    channel: str = Field(default="email", pattern="^(email|sms|whatsapp|phone|api)$")


def rule_json(rule: Rule) -> dict[str, Any]:
    return {"id": rule.id, "name": rule.name, "description": rule.description, "event": rule.event,
            "condition": rule.condition, "actions": rule.actions, "stop_processing": rule.stop_processing,
            "enabled": rule.enabled, "position": rule.position, "created_at": rule.created_at.isoformat()}


def checked(body: RuleBody) -> RuleBody:
    """The rule, or a 400 naming the first bad JSON path and listing all of them."""
    try:
        check_rule(body.model_dump())
    except RuleError as exc:
        path, message = exc.errors[0]
        raise ApiError(400, "invalid_rule", f"{path}: {message}", path,
                       errors=[{"field": p, "message": m} for p, m in exc.errors]) from None
    return body


@requires("admin")
async def list_rules(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        rows = (await session.execute(select(Rule).order_by(col(Rule.position), col(Rule.id)))).scalars()
        return web.json_response({"items": [rule_json(r) for r in rows]})


@requires("admin")
async def create_rule(request: web.Request) -> web.Response:
    body = checked(await parse_body(request, RuleBody))
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session, session.begin():
        rule = Rule(**body.model_dump())
        session.add(rule)
    rules_changed(runtime)
    return web.json_response(rule_json(rule), status=201)


@requires("admin")
async def get_rule(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        rule = await session.get(Rule, path_id(request))
        if rule is None:
            raise not_found("rule")
        return web.json_response(rule_json(rule))


@requires("admin")
async def update_rule(request: web.Request) -> web.Response:
    body = checked(await parse_body(request, RuleBody))
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session, session.begin():
        rule = await session.get(Rule, path_id(request))
        if rule is None:
            raise not_found("rule")
        for name, value in body.model_dump().items():
            setattr(rule, name, value)
    rules_changed(runtime)
    return web.json_response(rule_json(rule))


@requires("admin")
async def delete_rule(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session, session.begin():
        rule = await session.get(Rule, path_id(request))
        if rule is None:
            raise not_found("rule")
        await session.delete(rule)
    rules_changed(runtime)
    return web.Response(status=204)


@requires("admin", "agent")
async def catalog(request: web.Request) -> web.Response:
    """What the rule editor offers: events, fields, operators and actions with their parameters."""
    return web.json_response({
        "events": list(EVENT_TYPES),
        "fields": [{"name": f.name, "type": f.type.value, "description": f.description} for f in RULE_FIELDS],
        "operators": [{"name": o.name, "description": o.description,
                       "accepts": sorted(k.value for k in o.accepts)} for o in OPERATORS.values()],
        "actions": [{"name": a.name, "description": a.description, "params": a.params.model_json_schema()}
                    for a in ACTIONS.values()],
    })


@requires("admin", "agent")
async def dry_run(request: web.Request) -> web.Response:
    """Which rules would fire on a stored message (message_id) or a given text, and why."""
    body = await parse_body(request, DryRunBody)
    if (body.message_id is None) == (body.text is None):
        raise bad_request("give either message_id or text", "message_id")
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session:
        try:
            result = await dryrun.dry_run(session, runtime.settings, utcnow(), message_id=body.message_id,
                                          text=body.text, subject=body.subject, channel=body.channel)
        except LookupError:
            raise not_found("message") from None
    return web.json_response(result, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str, ensure_ascii=False)

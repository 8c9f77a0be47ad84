"""The admins' rule editor: each rule as JSON in a form, validation errors shown inline by JSON path."""

from __future__ import annotations

import json
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlmodel import col, select

from hub.keys import RUNTIME
from hub.routing.actions import ACTIONS
from hub.routing.fields import EVENT_TYPES
from hub.routing.rules import RuleError, check_rule
from hub.routing.wiring import rules_changed
from hub.store.models import AuditEvent, Rule
from hub.web import pages
from hub.web.security import CSRF_FIELD, csrf_ok

EDITABLE = ("name", "description", "event", "condition", "actions", "stop_processing", "enabled", "position")
NEW_RULE = {"name": "New rule", "description": "", "event": "message.received",
            "condition": {"all": []}, "actions": [], "stop_processing": False, "enabled": False, "position": 1000}


def _as_json(rule: Rule | dict[str, Any]) -> str:
    data = rule if isinstance(rule, dict) else {k: getattr(rule, k) for k in EDITABLE}
    return json.dumps(data, indent=2, ensure_ascii=False)


async def _admin(request: web.Request) -> pages.PageSession:
    found = await pages.require_session(request)
    if found.agent.role != "admin":
        raise web.HTTPForbidden(text="the rule editor is for admins")
    return found


async def _render(request: web.Request, found: pages.PageSession, errors: dict[str, list[tuple[str, str]]],
                  drafts: dict[str, str], status: int = 200) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        rules = list((await session.execute(select(Rule).order_by(col(Rule.position), col(Rule.id)))).scalars())
    context = pages.base_context(request, found) | {
        "rules": [(r, drafts.get(str(r.id), _as_json(r))) for r in rules],
        "new_rule": drafts.get("new", _as_json(NEW_RULE)), "errors": errors,
        "events": EVENT_TYPES, "actions": sorted(ACTIONS),
    }
    return aiohttp_jinja2.render_template("rules.html", request, context, status=status)


async def rules_page(request: web.Request) -> web.Response:
    """GET /rules: every rule, editable."""
    return await _render(request, await _admin(request), {}, {})


def _parse(text: str) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """The edited rule as data, or the errors that name where it is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [(f"line {exc.lineno}, column {exc.colno}", exc.msg)]
    if not isinstance(data, dict) or set(data) - set(EDITABLE):
        return None, [("$", f"a rule is an object with the keys {', '.join(EDITABLE)}")]
    try:
        check_rule({**NEW_RULE, **data})
    except RuleError as exc:
        return None, list(exc.errors)
    return {**NEW_RULE, **data}, []


async def save_rule(request: web.Request) -> web.StreamResponse:
    """POST /rules/{key}: save one rule (`new` creates it); invalid JSON re-renders with the errors inline."""
    found = await _admin(request)
    form = await request.post()
    if not csrf_ok(request, found.token, str(form.get(CSRF_FIELD, ""))):
        raise web.HTTPForbidden(text="the form expired; reload the page")
    key, text = request.match_info["key"], str(form.get("rule", ""))
    data, problems = _parse(text)
    if data is None:
        return await _render(request, found, {key: problems}, {key: text}, status=400)
    async with request.app[RUNTIME].factory() as session, session.begin():
        rule = Rule(name=data["name"], event=data["event"]) if key == "new" else await session.get(Rule, int(key))
        if rule is None:
            raise web.HTTPNotFound(text="no such rule")
        for name in EDITABLE:
            setattr(rule, name, data[name])
        session.add(rule)
        session.add(AuditEvent(actor=found.agent.email, action="rule.saved", entity="rule", entity_id=rule.id,
                               data={"name": rule.name}))
    rules_changed(request.app[RUNTIME])
    raise web.HTTPSeeOther("/rules")


def setup_rule_pages(app: web.Application) -> None:
    app.router.add_get("/rules", rules_page, name="page_rules")
    app.router.add_post(r"/rules/{key:(new|\d+)}", save_rule, name="page_rule_save")




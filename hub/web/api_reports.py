"""Analytics over HTTP: report numbers (JSON/CSV/PNG), the classifier, stay imports, stage history and the dashboard."""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Literal

import aiohttp_jinja2
from aiohttp import web
from pydantic import Field

from hub.analytics import classifier, crosssell, export, orders, reports, rfm, stages
from hub.keys import RUNTIME
from hub.routing.conditions import ConditionError
from hub.store.models import LIFECYCLE_STAGES
from hub.web import pages, report_charts
from hub.web.auth import current_agent, requires
from hub.web.errors import ApiError, bad_request, not_found, parse_body
from hub.web.params import parse_query, path_id
from hub.web.schemas import Body

ANALYSTS = ("admin", "marketer")
STAFF = ("admin", "agent", "marketer")
MAX_IMPORT_BYTES = 20 * 1024 * 1024


class ReportQuery(Body):
    period: Literal["month", "quarter", "year"] = "month"
    start: date | None = None
    end: date | None = None
    limit: int = Field(default=100, ge=1, le=10_000)
    segment_id: int | None = Field(default=None, gt=0)
    churn_days: int = Field(default=365, ge=1, le=3650)
    format: Literal["json", "csv"] = "json"

    def params(self) -> reports.Params:
        return reports.Params(period=self.period, start=self.start, end=self.end, limit=self.limit,
                              segment_id=self.segment_id, churn_days=self.churn_days)


class ClassifyBody(Body):
    dry_run: bool = True


class StageRulesBody(Body):
    rules: list[dict[str, Any]]


class StageBody(Body):
    stage: str = Field(min_length=1, max_length=20)


async def _rows(request: web.Request, name: str, query: ReportQuery) -> list[dict[str, Any]]:
    async with request.app[RUNTIME].factory() as session:
        try:
            return await reports.run(session, name, query.params())
        except reports.ReportError as exc:
            raise bad_request(str(exc)) from None


@requires(*ANALYSTS)
async def get_report(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/reports/{name}: the report's rows as JSON, or as a CSV download with format=csv."""
    name, query = request.match_info["name"], parse_query(request, ReportQuery)
    if name not in reports.REPORTS:
        raise not_found("report")
    rows = await _rows(request, name, query)
    if query.format == "csv":
        return web.Response(text=export.to_csv(rows), content_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return web.json_response({"report": name, "rows": rows}, dumps=_dumps)


def _dumps(value: Any) -> str:
    # Dates in report rows (last stay, stage dates) become ISO strings.
    return json.dumps(value, default=str)


@requires(*ANALYSTS)
async def retention_png(request: web.Request) -> web.Response:
    """GET /api/v1/reports/retention.png: the retention chart drawn by matplotlib."""
    rows = await _rows(request, "retention", parse_query(request, ReportQuery))
    return web.Response(body=export.retention_png(rows), content_type="image/png")


@requires("admin")
async def classify(request: web.Request) -> web.Response:
    """POST /api/v1/analytics/classify {dry_run}: run the classifier now (a dry run by default)."""
    body = await parse_body(request, ClassifyBody)
    rt = request.app[RUNTIME]
    async with rt.factory() as session, session.begin():
        result = await classifier.classify(session, dry_run=body.dry_run, handlers=rt.handlers,
                                           actor=f"agent:{current_agent(request).email}")
    return web.json_response(result.as_dict())


@requires(*ANALYSTS)
async def get_stage_rules(request: web.Request) -> web.Response:
    """GET /api/v1/analytics/stage-rules: the rules in force and the fields they may test."""
    async with request.app[RUNTIME].factory() as session:
        rules = await classifier.load_rules(session)
    fields = [{"name": f.name, "type": str(f.type), "description": f.description} for f in rfm.FIELDS]
    return web.json_response({"rules": [_rule(r) for r in rules], "fields": fields,
                              "stages": [*LIFECYCLE_STAGES, classifier.KEEP]})


@requires("admin")
async def put_stage_rules(request: web.Request) -> web.Response:
    """PUT /api/v1/analytics/stage-rules {rules}: replace the rules (checked first; errors name the rule)."""
    body = await parse_body(request, StageRulesBody)
    try:
        rules = classifier.parse_rules(body.rules)
    except ConditionError as exc:
        path, message = exc.errors[0]
        raise ApiError(400, "invalid_rule", f"{path}: {message}", path,
                       errors=[{"field": p, "message": m} for p, m in exc.errors]) from None
    async with request.app[RUNTIME].factory() as session, session.begin():
        await classifier.save_rules(session, rules)
    return web.json_response({"rules": [_rule(r) for r in rules]})


def _rule(rule: classifier.StageRuleSpec) -> dict[str, Any]:
    return {"stage": rule.stage, "condition": rule.condition, "description": rule.description}


@requires("admin")
async def import_stays(request: web.Request) -> web.Response:
    """POST /api/v1/stays/import (text/csv; ?strict=1&name=file.csv): the import report; 400 if strict and bad."""
    if (request.content_length or 0) > MAX_IMPORT_BYTES:
        raise ApiError(413, "too_large", f"at most {MAX_IMPORT_BYTES} bytes per import")
    text = (await request.read()).decode("utf-8-sig", errors="replace")
    name, strict = request.query.get("name", "upload.csv")[:200], request.query.get("strict") in {"1", "true"}
    async with request.app[RUNTIME].factory() as session, session.begin():
        report = await orders.import_text(session, name, text, strict=strict)
    return web.json_response(report.as_dict(), status=400 if strict and report.errors else 200)


@requires(*STAFF)
async def customer_stages(request: web.Request) -> web.Response:
    """GET /api/v1/customers/{id}/stages: the stage history, oldest first."""
    async with request.app[RUNTIME].factory() as session:
        found = await stages.history(session, path_id(request))
    return web.json_response({"items": [
        {"from_stage": c.from_stage, "to_stage": c.to_stage, "cause": c.cause, "actor": c.actor,
         "changed_at": c.changed_at.isoformat()} for c in found]})


@requires("admin", "agent")
async def set_customer_stage(request: web.Request) -> web.Response:
    """POST /api/v1/customers/{id}/stage {stage}: an agent moves the customer; rules see the event."""
    body, rt = await parse_body(request, StageBody), request.app[RUNTIME]
    try:
        async with rt.factory() as session, session.begin():
            change = await stages.set_stage(session, path_id(request), body.stage, cause="agent",
                                            actor=current_agent(request).email, handlers=rt.handlers)
    except stages.StageError as exc:
        missing = str(exc).startswith("no customer")
        raise (not_found("customer") if missing else bad_request(str(exc), "stage")) from None
    return web.json_response({"changed": change is not None, "stage": body.stage})


@requires(*STAFF)
async def customer_suggestions(request: web.Request) -> web.Response:
    """GET /api/v1/customers/{id}/suggestions: cross-sell hints for the customer panel."""
    async with request.app[RUNTIME].factory() as session:
        hints = await crosssell.suggestions(session, path_id(request))
    return web.json_response({"items": hints})


# --- the dashboard page --------------------------------------------------------------------------


async def dashboard(request: web.Request) -> web.Response:
    """GET /reports: stage distribution, retention, cohorts, complaints and workload as inline SVG."""
    found = await pages.require_session(request)
    if found.agent.role not in ANALYSTS:
        raise web.HTTPForbidden(text="reports are for admins and marketers")
    query = parse_query(request, ReportQuery)
    params = query.params()
    async with request.app[RUNTIME].factory() as session:
        data = {name: await reports.run(session, name, params)
                for name in ("stages", "retention", "cohorts", "complaints", "workload", "first_response", "churn")}
    context = pages.base_context(request, found)
    # Without `csrf` the inbox script stays idle on this page; the logout form gets its token by name.
    logout_csrf = context.pop("csrf")
    complaints = [r for r in data["complaints"] if r["category"] != "(all)"]
    context |= {
        "query": query, "data": data, "logout_csrf": logout_csrf, "window": params.window,
        "complaint_total": data["complaints"][-1],
        "charts": {
            "stages": report_charts.stacked_stages(data["stages"], LIFECYCLE_STAGES),
            "retention": report_charts.bars(data["retention"][-12:], "period", ("active", "retained")),
            "cohorts": report_charts.heatmap(data["cohorts"][-12:]),
            "complaints": report_charts.bars(complaints, "category", ("opened", "avg_resolution_hours")),
            "workload": report_charts.bars(data["workload"], "agent",
                                           ("open_conversations", "replies", "interventions_open")),
        },
    }
    return aiohttp_jinja2.render_template("report_dashboard.html", request, context)

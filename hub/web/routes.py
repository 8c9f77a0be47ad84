"""Every route of the web app, named, in one place."""

from __future__ import annotations

from aiohttp import web

from hub.channels.phone import api as phone_api
from hub.channels.phone import webhooks as voice_hooks
from hub.channels.sms import webhooks as sms_hooks
from hub.web import (
    api_agents,
    api_campaigns,
    api_canned,
    api_complaints,
    api_conversations,
    api_customers,
    api_events,
    api_privacy,
    api_reports,
    api_routing,
    api_search,
    interventions_page,
    openapi,
    rules_page,
    survey_form,
)
from hub.web import metrics as web_metrics
from hub.web import pages as web_inbox

ID = r"{id:\d+}"


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", api_agents.healthz, name="healthz")
    r.add_get("/metrics", web_metrics.metrics_view, name="metrics")
    api_privacy.setup_routes(app)
    r.add_get("/api/v1/", api_index, name="api_index")
    r.add_post("/api/v1/auth/login", api_agents.login, name="login")
    r.add_get("/api/v1/me", api_agents.me, name="me")
    r.add_get("/api/v1/agents", api_agents.list_agents, name="agents")
    r.add_post("/api/v1/agents", api_agents.create_agent, name="agent_create")
    r.add_get("/api/v1/customers", api_customers.list_customers, name="customers")
    r.add_post("/api/v1/customers", api_customers.create_customer, name="customer_create")
    r.add_get(f"/api/v1/customers/{ID}", api_customers.get_customer, name="customer")
    r.add_patch(f"/api/v1/customers/{ID}", api_customers.update_customer, name="customer_update")
    r.add_post(f"/api/v1/customers/{ID}/merge", api_customers.merge_customer, name="customer_merge")
    r.add_get(f"/api/v1/customers/{ID}/timeline", api_customers.customer_timeline, name="customer_timeline")
    r.add_get("/api/v1/conversations", api_conversations.list_conversations, name="conversations")
    r.add_get("/api/v1/inbox/counts", api_conversations.inbox_counts, name="inbox_counts")
    r.add_post("/api/v1/conversations/bulk", api_conversations.bulk, name="conversations_bulk")
    r.add_patch(f"/api/v1/conversations/{ID}", api_conversations.update_conversation, name="conversation_update")
    r.add_get(f"/api/v1/conversations/{ID}/timeline", api_conversations.conversation_timeline,
              name="conversation_timeline")
    r.add_post(f"/api/v1/conversations/{ID}/presence", api_conversations.presence, name="conversation_presence")
    r.add_get(f"/api/v1/customers/{ID}/panel", api_customers.customer_panel, name="customer_panel")
    r.add_get("/api/v1/search", api_search.search_messages, name="search")
    r.add_get("/api/v1/canned", api_canned.list_canned, name="canned")
    r.add_post("/api/v1/canned", api_canned.create_canned, name="canned_create")
    r.add_post(f"/api/v1/canned/{ID}/render", api_canned.render_canned, name="canned_render")
    r.add_get("/api/v1/events", api_events.events, name="events")
    r.add_get("/api/v1/openapi.json", openapi.openapi_json, name="openapi")
    web_inbox.setup_page_routes(app)
    rules_page.setup_rule_pages(app)
    interventions_page.setup_intervention_pages(app)
    r.add_get(f"/api/v1/conversations/{ID}", api_conversations.get_conversation, name="conversation")
    r.add_post(f"/api/v1/conversations/{ID}/status", api_conversations.set_status, name="conversation_status")
    r.add_post(f"/api/v1/conversations/{ID}/assign", api_conversations.assign, name="conversation_assign")
    r.add_post(f"/api/v1/conversations/{ID}/notes", api_conversations.add_note, name="conversation_note")
    r.add_post(f"/api/v1/conversations/{ID}/reply", api_conversations.reply, name="conversation_reply")
    r.add_post("/api/v1/calls", phone_api.log_call_by_hand, name="call_create")
    r.add_get("/api/v1/rules", api_routing.list_rules, name="rules")
    r.add_post("/api/v1/rules", api_routing.create_rule, name="rule_create")
    r.add_get("/api/v1/rules/catalog", api_routing.catalog, name="rules_catalog")
    r.add_post("/api/v1/rules/dry-run", api_routing.dry_run, name="rules_dry_run")
    r.add_get(f"/api/v1/rules/{ID}", api_routing.get_rule, name="rule")
    r.add_put(f"/api/v1/rules/{ID}", api_routing.update_rule, name="rule_update")
    r.add_delete(f"/api/v1/rules/{ID}", api_routing.delete_rule, name="rule_delete")
    r.add_get("/api/v1/complaints", api_complaints.list_complaints, name="complaints")
    r.add_post("/api/v1/complaints", api_complaints.create_complaint, name="complaint_create")
    r.add_get(f"/api/v1/complaints/{ID}", api_complaints.get_complaint, name="complaint")
    r.add_post(f"/api/v1/complaints/{ID}/status", api_complaints.set_complaint_status, name="complaint_status")
    r.add_post(f"/api/v1/complaints/{ID}/interventions", api_complaints.add_intervention,
               name="complaint_intervention")
    r.add_get("/api/v1/interventions", api_complaints.list_interventions, name="interventions")
    r.add_post(f"/api/v1/interventions/{ID}/status", api_complaints.set_intervention_status,
               name="intervention_status")
    r.add_post(f"/api/v1/interventions/{ID}/notes", api_complaints.add_intervention_note, name="intervention_note")
    r.add_post("/api/v1/cases", api_complaints.create_case, name="case_create")
    r.add_get(f"/api/v1/cases/{ID}", api_complaints.get_case, name="case")
    r.add_post(f"/api/v1/cases/{ID}/transition", api_complaints.move_case, name="case_transition")
    r.add_get(f"/api/v1/surveys/{ID}", api_complaints.get_survey, name="survey")
    r.add_get(f"/api/v1/conversations/{ID}/sla", api_complaints.conversation_sla, name="conversation_sla")
    r.add_get("/s/{token}", survey_form.survey_page, name="survey_page")
    r.add_post("/s/{token}", survey_form.survey_submit, name="survey_submit")
    _campaign_routes(r)
    _report_routes(r)
    r.add_post("/webhooks/twilio/sms", sms_hooks.sms_webhook, name="twilio_sms")
    r.add_post("/webhooks/twilio/status", sms_hooks.status_webhook, name="twilio_status")
    r.add_post("/webhooks/twilio/voice", voice_hooks.voice_webhook, name="twilio_voice")
    r.add_post("/webhooks/twilio/voice/dial", voice_hooks.dial_webhook, name="twilio_voice_dial")
    r.add_post("/webhooks/twilio/voice/status", voice_hooks.voice_status_webhook, name="twilio_voice_status")
    r.add_post("/webhooks/twilio/voice/recording", voice_hooks.recording_webhook, name="twilio_recording")


async def api_index(request: web.Request) -> web.Response:
    """The API's entry point: its version and the named routes."""
    names = sorted(n for n in request.app.router.named_resources() if n != "api_index")
    return web.json_response({"version": "v1", "routes": names})


def _campaign_routes(r: web.UrlDispatcher) -> None:
    """Campaigns: marketer API, chart page, and the public unsubscribe and tracking links."""
    c = api_campaigns
    r.add_post("/api/v1/templates", c.save_template, name="template_save")
    r.add_get("/api/v1/templates/{name}/preview", c.preview_template, name="template_preview")
    r.add_post("/api/v1/segments", c.save_segment, name="segment_save")
    r.add_get(f"/api/v1/segments/{ID}/preview", c.segment_preview, name="segment_preview")
    r.add_post("/api/v1/segments/import", c.segment_import, name="segment_import")
    r.add_get("/api/v1/campaigns", c.list_campaigns, name="campaigns")
    r.add_post("/api/v1/campaigns", c.create_campaign, name="campaign_create")
    r.add_get(f"/api/v1/campaigns/{ID}", c.get_campaign, name="campaign")
    r.add_post(f"/api/v1/campaigns/{ID}/{{action:schedule|pause|resume|cancel}}", c.campaign_action,
               name="campaign_action")
    r.add_get(f"/api/v1/campaigns/{ID}/stats", c.campaign_stats, name="campaign_stats")
    r.add_get(f"/campaigns/{ID}/chart", c.chart_page, name="campaign_chart")
    r.add_get("/u/{token}", c.unsubscribe_page, name="unsubscribe_page")
    r.add_post("/u/{token}", c.unsubscribe, name="unsubscribe")
    r.add_post("/u/{token}/resubscribe", c.resubscribe, name="resubscribe")
    r.add_get("/t/o/{token}.gif", c.open_pixel, name="track_open")
    r.add_get("/t/c/{token}", c.click, name="track_click")


def _report_routes(r: web.UrlDispatcher) -> None:
    """Analytics (hub.analytics): reports, classifier, stay imports, stage history and the dashboard."""
    a = api_reports
    r.add_get("/api/v1/reports/retention.png", a.retention_png, name="report_retention_png")
    r.add_get("/api/v1/reports/{name:[a-z_]+}", a.get_report, name="report")
    r.add_post("/api/v1/analytics/classify", a.classify, name="analytics_classify")
    r.add_get("/api/v1/analytics/stage-rules", a.get_stage_rules, name="stage_rules")
    r.add_put("/api/v1/analytics/stage-rules", a.put_stage_rules, name="stage_rules_update")
    r.add_post("/api/v1/stays/import", a.import_stays, name="stays_import")
    r.add_get(f"/api/v1/customers/{ID}/stages", a.customer_stages, name="customer_stages")
    r.add_post(f"/api/v1/customers/{ID}/stage", a.set_customer_stage, name="customer_stage")
    r.add_get(f"/api/v1/customers/{ID}/suggestions", a.customer_suggestions, name="customer_suggestions")
    r.add_get("/reports", a.dashboard, name="reports_page")

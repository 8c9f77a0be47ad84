"""Every route of the web app, named, in one place."""

from __future__ import annotations

from aiohttp import web

from hub.channels.phone import api as phone_api
from hub.channels.phone import webhooks as voice_hooks
from hub.channels.sms import webhooks as sms_hooks
from hub.web import api_agents, api_conversations, api_customers

ID = r"{id:\d+}"


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", api_agents.healthz, name="healthz")
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
    r.add_get(f"/api/v1/conversations/{ID}", api_conversations.get_conversation, name="conversation")
    r.add_post(f"/api/v1/conversations/{ID}/status", api_conversations.set_status, name="conversation_status")
    r.add_post(f"/api/v1/conversations/{ID}/assign", api_conversations.assign, name="conversation_assign")
    r.add_post(f"/api/v1/conversations/{ID}/notes", api_conversations.add_note, name="conversation_note")
    r.add_post(f"/api/v1/conversations/{ID}/reply", api_conversations.reply, name="conversation_reply")
    r.add_post("/api/v1/calls", phone_api.log_call_by_hand, name="call_create")
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

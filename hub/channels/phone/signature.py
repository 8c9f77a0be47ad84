"""Twilio webhook signatures for voice callbacks, checked against the hub's public URL.

A twin of hub/channels/sms/signature.py: channels never import each other (see DESIGN.md).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm

from hub.settings import Settings
from hub.web.errors import ApiError

SIGNATURE_HEADER = "X-Twilio-Signature"


async def signed_form(request: web.Request, settings: Settings) -> tuple[bytes, MultiDict[str]]:
    """Read a bounded form body and verify its signature; 413 or 403 (nothing stored) otherwise."""
    limit = settings.twilio_webhook_max_bytes
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise ApiError(413, "too_large", f"webhook body over {limit} bytes")
    # Bad UTF-8 is replaced, not refused: it then fails the signature, which is the right 403.
    form = MultiDict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    signature, token = request.headers.get(SIGNATURE_HEADER), settings.twilio_auth_token
    if not token:
        raise ApiError(403, "forbidden", "Twilio webhooks are disabled: HUB_TWILIO_AUTH_TOKEN is not set")
    url = settings.public_url.rstrip("/") + request.path_qs
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER, ""))
    if not signature or not RequestValidator(token).validate(url, form, signature, algorithm=algorithm):
        raise ApiError(403, "bad_signature", "missing or invalid X-Twilio-Signature")
    return body, form

"""Twilio webhook signatures, checked against the public URL Twilio was told to call.

Shared by the SMS and the voice webhooks (channels never import each other, see DESIGN.md).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm

from hub.settings import Settings
from hub.web.errors import ApiError

SIGNATURE_HEADER = "X-Twilio-Signature"


def public_url(base: str, path_qs: str) -> str:
    """The URL Twilio signed: the configured public base (it may sit behind a proxy) + path and query."""
    return base.rstrip("/") + path_qs


def form_fields(body: bytes) -> MultiDict[str]:
    """Decode an urlencoded body keeping repeated keys, which Twilio signs one by one."""
    # Bad UTF-8 is replaced, not refused: it then fails the signature, which is the right 403.
    return MultiDict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def signature_ok(
    token: str, url: str, form: MultiDict[str], signature: str | None, settings_header: str = ""
) -> bool:
    """Whether `signature` is Twilio's HMAC of `url` and `form` under `token`."""
    if not signature:
        return False
    validator = RequestValidator(token)
    return bool(validator.validate(url, form, signature, algorithm=get_signature_algorithm(settings_header)))


async def signed_form(request: web.Request, settings: Settings) -> tuple[bytes, MultiDict[str]]:
    """Read a bounded form body and verify its signature; 413 or 403 (nothing stored) otherwise."""
    limit = settings.twilio_webhook_max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"webhook body over {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise ApiError(413, "too_large", f"webhook body over {limit} bytes")
    form = form_fields(body)
    token = settings.twilio_auth_token
    if not token:
        raise ApiError(403, "forbidden", "Twilio webhooks are disabled: HUB_TWILIO_AUTH_TOKEN is not set")
    url = public_url(settings.public_url, request.path_qs)
    header = request.headers.get(SIGNATURE_SETTINGS_HEADER, "")
    if not signature_ok(token, url, form, request.headers.get(SIGNATURE_HEADER), header):
        raise ApiError(403, "bad_signature", "missing or invalid X-Twilio-Signature")
    return body, form

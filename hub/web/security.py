"""Browser safety: CSRF tokens for cookie sessions, and security headers (CSP) on every response."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

from hub.keys import SETTINGS
from hub.web.errors import ApiError, Handler

SESSION_COOKIE = "hub_session"
LOGIN_CSRF_COOKIE = "hub_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# No inline script or style anywhere: everything comes from /static, so injected markup cannot run.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
            "base-uri 'none'; object-src 'none'")
# Sanitised mail bodies: shown in <iframe sandbox> by the page, and sandboxed here again by CSP.
MAIL_CSP = ("sandbox; default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; "
            "font-src 'none'; form-action 'none'; frame-ancestors 'self'; base-uri 'none'")


def csrf_token(secret: str, session_token: str) -> str:
    """The CSRF token bound to one session: an HMAC, so nothing has to be stored."""
    return hmac.new(secret.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()[:40]


def csrf_ok(request: web.Request, session_token: str, offered: str | None) -> bool:
    expected = csrf_token(request.app[SETTINGS].secret_key, session_token)
    return offered is not None and hmac.compare_digest(expected, offered)


def check_csrf_header(request: web.Request, session_token: str) -> None:
    """Cookie-authenticated API writes must echo the session's CSRF token in X-CSRF-Token."""
    if not csrf_ok(request, session_token, request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header for a cookie session")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CSP, no sniffing, no framing, no referrer leaks; views may set a stricter CSP themselves."""
    response = await handler(request)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", PAGE_CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if "frame-ancestors 'self'" not in headers["Content-Security-Policy"]:
        headers.setdefault("X-Frame-Options", "DENY")
    return response

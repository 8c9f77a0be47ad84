"""Hardening beside hub/web/security.py (CSRF + CSP there): HSTS, body limits, login throttling.

The login limiter counts failures per account and per client IP and locks both out for a
while past a threshold. With Redis the counts are shared by every web process (a guesser
spreading tries over processes is still counted); without Redis the one process keeps them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis

from hub.keys import RUNTIME, SETTINGS
from hub.ops import metrics
from hub.settings import Settings
from hub.web.errors import ApiError, Handler

# Routes anyone may POST to without a token: their bodies are small by nature.
PUBLIC_BODY_PREFIXES = ("/webhooks/", "/api/v1/auth/", "/login", "/s/", "/u/")
HSTS = "max-age=31536000; includeSubDomains"


def client_ip(request: web.Request, trusted_proxies: int) -> str:
    """The caller's address; behind N trusted proxies, the Nth address from the right of X-Forwarded-For."""
    if trusted_proxies:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return request.remote or "unknown"


def make_hardening(settings: Settings) -> Middleware:
    """Middleware: HSTS on https deployments, and a small body limit for unauthenticated POSTs."""
    https = settings.public_url.startswith("https://")
    limit = settings.public_body_max_bytes

    @web.middleware
    async def hardening(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in ("POST", "PUT", "PATCH") and request.path.startswith(PUBLIC_BODY_PREFIXES):
            if request.content_length is None:
                # Chunked bodies have no length: the clone makes aiohttp stop reading past the limit.
                request = request.clone(client_max_size=limit)
            elif request.content_length > limit:
                raise ApiError(413, "too_large", f"request body over {limit} bytes")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # Raised errors skip security.py's header middleware (it only sees returned responses).
            _error_headers(exc, https)
            raise
        if https and not response.prepared:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    return hardening


def _error_headers(exc: web.HTTPException, https: bool) -> None:
    headers = exc.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if https:
        headers.setdefault("Strict-Transport-Security", HSTS)


def _key(kind: str, value: str) -> str:
    # Hashed: the Redis keys must not hold the email addresses people typed.
    return f"hub:login:{kind}:{hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]}"


@dataclass
class _Memory:
    failures: dict[str, list[float]] = field(default_factory=dict)
    locked_until: dict[str, float] = field(default_factory=dict)


class LoginLimiter:
    """Failures per account and per IP in a sliding window; past the threshold, a lock-out."""

    def __init__(self, settings: Settings, redis: Redis | None = None) -> None:
        self.max_account = settings.login_max_failures
        self.max_ip = settings.login_ip_max_failures
        self.window = settings.login_window_seconds
        self.lockout = settings.login_lockout_seconds
        self.redis = redis
        self._mem = _Memory()

    async def locked_for(self, account: str, ip: str) -> float:
        """Seconds until this account or IP may try again (0: now)."""
        keys = [_key("acct", account), _key("ip", ip)]
        if self.redis is not None:
            ttls = [await self.redis.pttl(k + ":lock") for k in keys]
            return max((t / 1000 for t in ttls if t > 0), default=0.0)
        now = time.monotonic()
        return max((self._mem.locked_until.get(k, 0.0) - now for k in keys), default=0.0) if keys else 0.0

    async def failed(self, account: str, ip: str) -> None:
        """Count a failed try; lock the account or IP once it has too many."""
        for key, limit in ((_key("acct", account), self.max_account), (_key("ip", ip), self.max_ip)):
            if await self._count(key) >= limit:
                await self._lock(key)

    async def succeeded(self, account: str) -> None:
        """A right password clears the account's failures (not the IP's: one good account proves little)."""
        key = _key("acct", account)
        if self.redis is not None:
            await self.redis.delete(key)
        else:
            self._mem.failures.pop(key, None)

    async def _count(self, key: str) -> int:
        if self.redis is not None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self.window, nx=True)
                count, _ = await pipe.execute()
            return int(count)
        now = time.monotonic()
        kept = [t for t in self._mem.failures.get(key, []) if t > now - self.window] + [now]
        self._mem.failures[key] = kept
        return len(kept)

    async def _lock(self, key: str) -> None:
        if self.redis is not None:
            await self.redis.set(key + ":lock", b"1", ex=self.lockout)
            await self.redis.delete(key)
        else:
            self._mem.locked_until[key] = time.monotonic() + self.lockout
            self._mem.failures.pop(key, None)


LIMITER = web.AppKey("login_limiter", LoginLimiter)


async def limiter_ctx(app: web.Application) -> AsyncIterator[None]:
    """One limiter per app, on the runtime's Redis when there is one (after runtime_ctx)."""
    app[LIMITER] = LoginLimiter(app[SETTINGS], app[RUNTIME].redis)
    yield


async def guard_login(request: web.Request, account: str) -> None:
    """Refuse (429 with Retry-After) while the account or this IP is locked out."""
    ip = client_ip(request, request.app[SETTINGS].trusted_proxies)
    wait = await request.app[LIMITER].locked_for(account, ip)
    if wait > 0:
        metrics.LOGIN_REFUSED.labels("locked").inc()
        error = ApiError(429, "locked_out", f"too many failed logins; try again in {int(wait) + 1} s",
                         retry_after=int(wait) + 1)
        error.headers["Retry-After"] = str(int(wait) + 1)
        raise error


async def record_login(request: web.Request, account: str, ok: bool) -> None:
    """Count the outcome of a password check."""
    limiter = request.app[LIMITER]
    if ok:
        await limiter.succeeded(account)
        return
    metrics.LOGIN_REFUSED.labels("wrong_password").inc()
    await limiter.failed(account, client_ip(request, request.app[SETTINGS].trusted_proxies))


def session_ttl(request: web.Request) -> timedelta:
    """How long a password login's token lives (HUB_SESSION_TTL_HOURS)."""
    return timedelta(hours=request.app[SETTINGS].session_ttl_hours)

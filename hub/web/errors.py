"""One JSON error shape for the whole API: {"error": {"code", "message", "field"?}}."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(web.HTTPException):
    """An HTTP error carrying the JSON body every client can rely on."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, **extra: Any) -> None:
        self.status_code = status
        body: dict[str, Any] = {"code": code, "message": message}
        if field is not None:
            body["field"] = field
        body.update(extra)
        super().__init__(text=json.dumps({"error": body}), content_type="application/json")


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, field)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str, **extra: Any) -> ApiError:
    return ApiError(409, "conflict", message, **extra)


def has_nul(value: Any) -> bool:
    """Whether any string (or key) inside a parsed JSON value contains a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Parse and validate a JSON body; errors name the offending field (dotted path)."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}") from None
    if has_nul(data):
        # PostgreSQL refuses NUL in text and JSONB: say so here rather than fail in the store.
        raise bad_request("strings may not contain NUL characters")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise ApiError(400, "invalid_field", f"{field or 'body'}: {first['msg']}", field,
                       errors=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                               for e in exc.errors()]) from None


def _http_to_json(exc: web.HTTPException) -> web.Response:
    code = exc.reason.lower().replace(" ", "_")
    return web.json_response({"error": {"code": code, "message": exc.reason}}, status=exc.status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every API error into the JSON shape; unexpected crashes become a 500 without details."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        return _http_to_json(exc)
    except Exception:
        if not request.path.startswith(("/api/", "/webhooks/")):
            raise
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": {"code": "internal", "message": "internal error"}}, status=500)

"""Query-string parameters, checked: a bad value is a 400 naming the parameter."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub.web.errors import ApiError, bad_request, has_nul, not_found

Q = TypeVar("Q", bound=BaseModel)
MAX_ID = 2**63 - 1

MAX_LIMIT = 200


def int_param(request: web.Request, name: str, default: int | None = None, *, low: int = 1,
              high: int | None = None) -> int | None:
    """An optional integer query parameter within bounds."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer", name) from None
    if value < low or (high is not None and value > high):
        raise bad_request(f"{name} must be between {low} and {high}", name)
    return value


def limit(request: web.Request, default: int = 50) -> int:
    value = int_param(request, "limit", default, high=MAX_LIMIT)
    assert value is not None
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    """A numeric id from the URL path (the route pattern already guarantees digits)."""
    try:
        value = int(request.match_info[name])
    except (KeyError, ValueError):
        raise not_found(name) from None
    if not 0 < value <= MAX_ID:
        raise not_found(name)
    return value


def choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}", name)
    return raw


def parse_query(request: web.Request, model: type[Q]) -> Q:
    """Validate the query string against a model; a bad value is a 400 naming the parameter."""
    data = dict(request.query)
    if has_nul(data):
        raise bad_request("query parameters may not contain NUL characters")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise ApiError(400, "invalid_field", f"{field or 'query'}: {first['msg']}", field) from None

"""Query-string parameters, checked: a bad value is a 400 naming the parameter."""

from __future__ import annotations

from aiohttp import web

from hub.web.errors import bad_request, not_found

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
        return int(request.match_info[name])
    except (KeyError, ValueError):
        raise not_found(name) from None


def choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}", name)
    return raw

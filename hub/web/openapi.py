"""OpenAPI 3.1 generated from the routes and the pydantic models the views already use.

A view declares its models once with `@doc(...)`; the same models parse the request (parse_body,
parse_query) and build the response (serialize.py), so the document cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hub.web.schemas import MAX_ID, ErrorOut

H = TypeVar("H", bound=Callable[..., Any])
ATTR = "openapi_spec"
ERROR_TEXT = {400: "Invalid request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
              409: "Conflict"}


@dataclass(frozen=True, slots=True)
class Spec:
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = (400, 401, 403)
    tag: str = "inbox"
    content_type: str = "application/json"
    public: bool = False


def doc(summary: str, **options: Any) -> Callable[[H], H]:
    """Attach the OpenAPI description of a view: its body, query and response models."""

    def mark(view: H) -> H:
        setattr(view, ATTR, Spec(summary, **options))
        return view

    return mark


def _path(template: str) -> tuple[str, list[str]]:
    names = re.findall(r"\{(\w+)(?::[^}]*)?\}", template)
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", template), names


def _models(specs: list[Spec]) -> tuple[dict[Any, Any], dict[str, Any]]:
    wanted: set[tuple[type[BaseModel], Any]] = {(ErrorOut, "serialization")}
    for spec in specs:
        if spec.body is not None:
            wanted.add((spec.body, "validation"))
        if spec.response is not None:
            wanted.add((spec.response, "serialization"))
    refs, schema = models_json_schema(sorted(wanted, key=lambda m: m[0].__name__),
                                      ref_template="#/components/schemas/{model}")
    return refs, schema.get("$defs", {})


def _parameters(spec: Spec, path_names: list[str]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
        for n in path_names]
    if spec.query is not None:
        schema = spec.query.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _operation(spec: Spec, name: str, path_names: list[str], refs: dict[Any, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if spec.response is not None:
        ok["content"] = {spec.content_type: {"schema": refs[(spec.response, "serialization")]}}
    elif spec.content_type != "application/json":
        ok["content"] = {spec.content_type: {"schema": {"type": "string"}}}
    error = {"content": {"application/json": {"schema": refs[(ErrorOut, "serialization")]}}}
    responses = {str(spec.status): ok} | {
        str(code): {"description": ERROR_TEXT.get(code, "Error"), **error}
        for code in spec.errors if not (spec.public and code in (401, 403))}
    op: dict[str, Any] = {"operationId": name, "summary": spec.summary, "tags": [spec.tag],
                          "parameters": _parameters(spec, path_names), "responses": responses}
    if spec.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(spec.body, "validation")]}}}
    if spec.public:
        op["security"] = []
    return op


def build(app: web.Application, *, title: str = "hub API", version: str = "1") -> dict[str, Any]:
    """The OpenAPI document for every documented /api/ route of the app."""
    routes = [(r, getattr(r.handler, ATTR, None)) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None]
    documented = [(r, s) for r, s in routes if isinstance(s, Spec)]
    refs, components = _models([s for _, s in documented])
    paths: dict[str, dict[str, Any]] = {}
    for route, spec in documented:
        assert route.resource is not None
        info = route.resource.get_info()
        template, names = _path(info.get("path") or info.get("formatter") or "")
        op = _operation(spec, route.name or route.handler.__name__, names, refs)
        paths.setdefault(template, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


@doc("This document", public=True, errors=(), tag="meta")
async def openapi_json(request: web.Request) -> web.Response:
    """Serve the generated document (built once per app)."""
    return web.json_response(build(request.app))

"""Compile a condition to a SQLAlchemy WHERE clause over columns the caller maps.

Every leaf compiles to an expression that is never NULL (a missing value makes it false), so
`not`, `all` and `any` follow two-valued logic exactly as the Python predicate does.

Where SQL and Python may differ, and nowhere else:
- PostgreSQL folds text with `lower()`: no accent folding, no NFKD, and locale-dependent case
  and word characters. So `contains`, `starts_with` and `contains_any` agree with Python only
  on ASCII text there. SQLite runs the Python folding itself (see `install_sqlite_functions`).
- `matches` on PostgreSQL uses its own regex dialect (`~`, POSIX ARE); patterns in the common
  subset (literals, classes, anchors, quantifiers, a leading `(?i)`) behave the same.
- `customer.attributes.<key>` values are compared as text; store attributes as strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, String, and_, false, literal, not_, or_, true, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from hub.routing.conditions.ast import All, AnyOf, Condition, ConditionError, Leaf, Not
from hub.routing.conditions.fields import FieldType
from hub.routing.conditions.sqlfuncs import json_list_has_any, json_text, regexp_search, text_fold, text_words

Kind = Literal["scalar", "json_list", "json_object"]


@dataclass(frozen=True, slots=True)
class SqlField:
    """A column and how it stores the field: plain, a JSON array of tags, or a JSON object."""

    column: ColumnElement[Any]
    kind: Kind = "scalar"


Columns = Mapping[str, "ColumnElement[Any] | SqlField"]
SqlBuild = Callable[[ColumnElement[Any], Kind, Leaf, datetime], ColumnElement[bool]]

SQL_OPERATORS: dict[str, SqlBuild] = {}

_KIND_OF_TYPE: dict[FieldType, Kind] = {FieldType.STR_LIST: "json_list", FieldType.DICT: "json_object"}


def sql_operator(name: str) -> Callable[[SqlBuild], SqlBuild]:
    """Register the SQL half of operator `name`."""

    def register(build: SqlBuild) -> SqlBuild:
        SQL_OPERATORS[name] = build
        return build

    return register


def compile_sql(cond: Condition, columns: Columns, *, now: datetime) -> ColumnElement[bool]:
    """The WHERE clause selecting exactly the rows the Python predicate accepts."""
    compiler = _Compiler(columns, now)
    clause = compiler.node(cond)
    if compiler.errors:
        raise ConditionError(compiler.errors)
    return clause


class _Compiler:
    def __init__(self, columns: Columns, now: datetime) -> None:
        self.columns = columns
        self.now = now
        self.errors: list[tuple[str, str]] = []

    def node(self, cond: Condition) -> ColumnElement[bool]:
        if isinstance(cond, All):
            parts = [self.node(child) for child in cond.children]
            return and_(*parts) if parts else true()
        if isinstance(cond, AnyOf):
            parts = [self.node(child) for child in cond.children]
            return or_(*parts) if parts else false()
        if isinstance(cond, Not):
            return not_(self.node(cond.child))
        return self.leaf(cond)

    def leaf(self, leaf: Leaf) -> ColumnElement[bool]:
        resolved = self.column(leaf)
        build = SQL_OPERATORS.get(leaf.op.name)
        if build is None:
            self.errors.append((f"{leaf.path}.op", f"{leaf.op.name} cannot be used in SQL segments"))
        if resolved is None or build is None:
            return false()
        return build(resolved[0], resolved[1], leaf, self.now)

    def column(self, leaf: Leaf) -> tuple[ColumnElement[Any], Kind] | None:
        spec = leaf.field
        entry = self.columns.get(spec.name)
        if entry is None and spec.parent is not None:
            holder = self.columns.get(spec.parent)
            if isinstance(holder, SqlField) and holder.kind == "json_object":
                # JSON_EXTRACT on SQLite, ->> on PostgreSQL: the attribute as text.
                return type_coerce(holder.column, JSON)[spec.key].as_string(), "scalar"
        if entry is None:
            self.errors.append((f"{leaf.path}.field", f"{spec.name} has no column in this query"))
            return None
        column, kind = (entry.column, entry.kind) if isinstance(entry, SqlField) else (entry, "scalar")
        expected = _KIND_OF_TYPE.get(spec.type, "scalar")
        if kind != expected:
            message = f"{spec.name} must be mapped as {expected}, not {kind}"
            self.errors.append((f"{leaf.path}.field", message))
            return None
        return column, kind


# --- helpers --------------------------------------------------------------------------------


def _set(expr: ColumnElement[Any]) -> ColumnElement[bool]:
    return expr.is_not(None)


def _bind(expr: ColumnElement[Any], value: Any) -> ColumnElement[Any]:
    """A bound value; datetimes take the column's type, aware or naive UTC as it expects."""
    if not isinstance(value, datetime):
        return literal(value)
    impl = getattr(expr.type, "impl", expr.type)
    aware = value.astimezone(UTC)
    return literal(aware if getattr(impl, "timezone", True) else aware.replace(tzinfo=None), expr.type)


def _has_any(expr: ColumnElement[Any], tags: tuple[Any, ...]) -> ColumnElement[bool]:
    if not tags:
        return false()
    return and_(_set(expr), json_list_has_any(expr, *(literal(tag, String()) for tag in tags)))


# --- one function per operator --------------------------------------------------------------


@sql_operator("equals")
def equals_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), expr == _bind(expr, leaf.arg))


@sql_operator("not_equals")
def not_equals_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return not_(equals_sql(expr, kind, leaf, now))


@sql_operator("in")
def in_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    if kind == "json_list":
        return _has_any(expr, leaf.arg)
    if not leaf.arg:
        return false()
    return and_(_set(expr), expr.in_([_bind(expr, value) for value in leaf.arg]))


@sql_operator("not_in")
def not_in_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return not_(in_sql(expr, kind, leaf, now))


@sql_operator("contains")
def contains_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    if kind == "json_list":
        return _has_any(expr, (leaf.arg,))
    return and_(_set(expr), text_fold(expr).contains(leaf.arg, autoescape=True))


@sql_operator("contains_any")
def contains_any_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    if kind == "json_list":
        return _has_any(expr, leaf.arg)
    if not leaf.arg:
        return false()
    found = [text_words(expr).contains(phrase, autoescape=True) for phrase in leaf.arg]
    return and_(_set(expr), or_(*found))


@sql_operator("starts_with")
def starts_with_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), text_fold(expr).startswith(leaf.arg, autoescape=True))


@sql_operator("matches")
def matches_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), regexp_search(expr, literal(leaf.arg.pattern, String())))


@sql_operator("gt")
def gt_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), expr > _bind(expr, leaf.arg))


@sql_operator("gte")
def gte_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), expr >= _bind(expr, leaf.arg))


@sql_operator("lt")
def lt_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), expr < _bind(expr, leaf.arg))


@sql_operator("lte")
def lte_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), expr <= _bind(expr, leaf.arg))


@sql_operator("is_set")
def is_set_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    if kind == "scalar":
        return _set(expr)
    # A JSON column may hold the JSON value null, which the Python side sees as None.
    return and_(_set(expr), json_text(expr) != "null")


@sql_operator("is_empty")
def is_empty_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    if kind == "scalar":
        return or_(expr.is_(None), expr == "")
    return or_(expr.is_(None), json_text(expr).in_(["[]", "{}", "null"]))


@sql_operator("older_than")
def older_than_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), expr < _bind(expr, now - leaf.arg))


@sql_operator("within")
def within_sql(expr: ColumnElement[Any], kind: Kind, leaf: Leaf, now: datetime) -> ColumnElement[bool]:
    return and_(_set(expr), expr >= _bind(expr, now - leaf.arg))

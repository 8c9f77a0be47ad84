"""Condition operators: each one small function, registered by name with a description.

An operator has two halves. `parse` checks the JSON value against the field and returns the
prepared argument (folded text, compiled pattern, timedelta...) once, at validation time;
`test(actual, arg, now)` is the predicate run per message. `sql.py` holds the SQL half.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import regex

from hub.routing.conditions.durations import parse_duration
from hub.routing.conditions.fields import FieldSpec, FieldType
from hub.routing.conditions.text import fold, words

log = logging.getLogger(__name__)

Parse = Callable[[FieldSpec, object], Any]
Test = Callable[[Any, Any, "datetime | None"], bool]

# A regex gets this long per call; catastrophic backtracking on a hostile body must not stall ingest.
REGEX_TIMEOUT = 0.05
MAX_PATTERN_LENGTH = 300
MAX_LIST_LENGTH = 500

_SCALARS = frozenset({FieldType.STR, FieldType.NUMBER, FieldType.BOOL})
_TEXT = frozenset({FieldType.STR})
_TEXT_OR_TAGS = frozenset({FieldType.STR, FieldType.STR_LIST})
_ORDERED = frozenset({FieldType.NUMBER, FieldType.DATETIME})
_COLLECTIONS = (list, tuple, set, frozenset)


@dataclass(frozen=True, slots=True)
class Operator:
    """A named operator, the field types it accepts and its two Python halves."""

    name: str
    description: str
    accepts: frozenset[FieldType]
    parse: Parse
    test: Test
    takes_value: bool = True


OPERATORS: dict[str, Operator] = {}


def operator(
    name: str, description: str, accepts: frozenset[FieldType], parse: Parse, *, takes_value: bool = True
) -> Callable[[Test], Test]:
    """Register the decorated `test(actual, arg, now)` function as operator `name`."""

    def register(test: Test) -> Test:
        if name in OPERATORS:
            raise ValueError(f"operator {name!r} is already registered")
        OPERATORS[name] = Operator(name, description, accepts, parse, test, takes_value)
        return test

    return register


# --- value parsers: raise ValueError with a message for the rule editor ---------------------


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already (SQLite hands those back)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _element_type(field: FieldSpec) -> FieldType:
    return FieldType.STR if field.type is FieldType.STR_LIST else field.type


def _typed(kind: FieldType, value: object) -> object:
    if kind is FieldType.DATETIME:
        return _datetime(value)
    ok = {
        FieldType.STR: isinstance(value, str),
        FieldType.NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
        FieldType.BOOL: isinstance(value, bool),
    }.get(kind, False)
    if not ok:
        raise ValueError(f"expected a {kind.value} value, got {value!r}")
    return value


def _datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise ValueError(f"expected an ISO 8601 datetime, got {value!r}")


def parse_scalar(field: FieldSpec, value: object) -> object:
    """One value of the field's type."""
    return _typed(field.type, value)


def parse_list(field: FieldSpec, value: object) -> tuple[object, ...]:
    """A list of values of the field's (element) type."""
    if not isinstance(value, list) or len(value) > MAX_LIST_LENGTH:
        raise ValueError(f"expected a list of at most {MAX_LIST_LENGTH} values")
    return tuple(_typed(_element_type(field), item) for item in value)


def parse_text(field: FieldSpec, value: object) -> str:
    """A non-empty string: folded for text fields, kept exact for tags."""
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value if field.type is FieldType.STR_LIST else fold(value)


def parse_phrases(field: FieldSpec, value: object) -> tuple[str, ...]:
    """Words or phrases (text fields, each must hold a word) or exact tags (tag fields)."""
    items = parse_list(FieldSpec(field.name, FieldType.STR), value)
    if field.type is FieldType.STR_LIST:
        return tuple(str(item) for item in items)
    phrases = tuple(words(str(item)) for item in items)
    if any(not phrase.strip() for phrase in phrases):
        raise ValueError("every phrase needs at least one word")
    return phrases


def parse_pattern(field: FieldSpec, value: object) -> regex.Pattern[str]:
    """A regular expression that compiles, of bounded length."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_PATTERN_LENGTH:
        raise ValueError(f"expected a regular expression of 1 to {MAX_PATTERN_LENGTH} characters")
    try:
        return regex.compile(value)
    except regex.error as error:
        raise ValueError(f"invalid regular expression: {error}") from None


def parse_duration_value(field: FieldSpec, value: object) -> timedelta:
    """A duration such as "30d", "2h", "15m" or a number of seconds."""
    return parse_duration(value)


def parse_nothing(field: FieldSpec, value: object) -> None:
    """No value: the operator looks at the field alone."""
    if value is not None:
        raise ValueError("this operator takes no value")


# --- operators ------------------------------------------------------------------------------


@operator("equals", "is exactly this value (text is case-sensitive)", _SCALARS, parse_scalar)
def equals(actual: Any, arg: Any, now: datetime | None) -> bool:
    return actual is not None and not isinstance(actual, _COLLECTIONS) and actual == arg


@operator("not_equals", "is not this value, or is not set", _SCALARS, parse_scalar)
def not_equals(actual: Any, arg: Any, now: datetime | None) -> bool:
    return not equals(actual, arg, now)


@operator(
    "in", "is one of these values (for tags: has any of them)",
    frozenset({FieldType.STR, FieldType.NUMBER, FieldType.STR_LIST}), parse_list,
)
def in_(actual: Any, arg: tuple[Any, ...], now: datetime | None) -> bool:
    if isinstance(actual, _COLLECTIONS):
        return any(item in arg for item in actual)
    return actual is not None and actual in arg


@operator(
    "not_in", "is none of these values, or is not set",
    frozenset({FieldType.STR, FieldType.NUMBER, FieldType.STR_LIST}), parse_list,
)
def not_in(actual: Any, arg: tuple[Any, ...], now: datetime | None) -> bool:
    return not in_(actual, arg, now)


@operator("contains", "text contains this (ignoring case and accents); tags include this tag",
          _TEXT_OR_TAGS, parse_text)
def contains(actual: Any, arg: str, now: datetime | None) -> bool:
    if isinstance(actual, _COLLECTIONS):
        return arg in actual
    return isinstance(actual, str) and arg in fold(actual)


@operator("contains_any", "text has any of these whole words or phrases; tags include any of these",
          _TEXT_OR_TAGS, parse_phrases)
def contains_any(actual: Any, arg: tuple[str, ...], now: datetime | None) -> bool:
    if isinstance(actual, _COLLECTIONS):
        return any(item in actual for item in arg)
    if not isinstance(actual, str):
        return False
    text = words(actual)
    return any(phrase in text for phrase in arg)


@operator("starts_with", "text starts with this (ignoring case and accents)", _TEXT, parse_text)
def starts_with(actual: Any, arg: str, now: datetime | None) -> bool:
    return isinstance(actual, str) and fold(actual).startswith(arg)


@operator("matches", "text matches this regular expression (case-sensitive unless (?i))",
          _TEXT, parse_pattern)
def matches(actual: Any, arg: regex.Pattern[str], now: datetime | None) -> bool:
    return isinstance(actual, str) and regex_search(arg, actual)


def regex_search(pattern: regex.Pattern[str], text: str) -> bool:
    """Search under the time limit; a search that runs out of time counts as no match."""
    try:
        return pattern.search(text, timeout=REGEX_TIMEOUT) is not None
    except TimeoutError:
        log.warning("regex %r timed out on %d characters", pattern.pattern, len(text))
        return False


def _ordered(actual: Any) -> Any:
    return as_utc(actual) if isinstance(actual, datetime) else actual


@operator("gt", "is greater (later) than this", _ORDERED, parse_scalar)
def gt(actual: Any, arg: Any, now: datetime | None) -> bool:
    return actual is not None and _ordered(actual) > arg


@operator("gte", "is greater (later) than or equal to this", _ORDERED, parse_scalar)
def gte(actual: Any, arg: Any, now: datetime | None) -> bool:
    return actual is not None and _ordered(actual) >= arg


@operator("lt", "is less (earlier) than this", _ORDERED, parse_scalar)
def lt(actual: Any, arg: Any, now: datetime | None) -> bool:
    return actual is not None and _ordered(actual) < arg


@operator("lte", "is less (earlier) than or equal to this", _ORDERED, parse_scalar)
def lte(actual: Any, arg: Any, now: datetime | None) -> bool:
    return actual is not None and _ordered(actual) <= arg


@operator("is_set", "has a value (an empty text or list still counts)", frozenset(FieldType),
          parse_nothing, takes_value=False)
def is_set(actual: Any, arg: None, now: datetime | None) -> bool:
    return actual is not None


@operator("is_empty", "has no value, or an empty text, list or dict",
          frozenset({FieldType.STR, FieldType.STR_LIST, FieldType.DICT}), parse_nothing, takes_value=False)
def is_empty(actual: Any, arg: None, now: datetime | None) -> bool:
    return actual is None or (isinstance(actual, (str, dict, *_COLLECTIONS)) and len(actual) == 0)


def _need_now(now: datetime | None) -> datetime:
    if now is None:
        raise ValueError("the facts need a 'now' datetime for older_than and within")
    return as_utc(now)


@operator("older_than", "is longer ago than this duration (e.g. 30d, 2h, 15m)",
          frozenset({FieldType.DATETIME}), parse_duration_value)
def older_than(actual: Any, arg: timedelta, now: datetime | None) -> bool:
    cutoff = _need_now(now) - arg
    return actual is not None and as_utc(actual) < cutoff


@operator("within", "is no longer ago than this duration (e.g. 30d, 2h, 15m)",
          frozenset({FieldType.DATETIME}), parse_duration_value)
def within(actual: Any, arg: timedelta, now: datetime | None) -> bool:
    cutoff = _need_now(now) - arg
    return actual is not None and as_utc(actual) >= cutoff

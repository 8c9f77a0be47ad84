"""SQL constructs that render per dialect, and the SQLite functions the store must install.

SQLite renders each construct as a call to a function registered by `install_sqlite_functions`,
which runs the very Python code the predicates use, so SQLite agrees exactly. PostgreSQL gets
native SQL that agrees on ASCII text (see `sql.py` for the exact differences).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import regex
from sqlalchemy import Boolean, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from hub.routing.conditions.operators import regex_search
from hub.routing.conditions.text import fold, words


class text_fold(FunctionElement[str]):
    """Case- and accent-folded text: `hub_fold(x)` on SQLite, `lower(x)` on PostgreSQL."""

    type = String()
    name = "hub_fold"
    inherit_cache = True


class text_words(FunctionElement[str]):
    """Folded words padded with spaces, as `text.words` builds them."""

    type = String()
    name = "hub_words"
    inherit_cache = True


class regexp_search(FunctionElement[bool]):
    """`regexp_search(text, pattern)`: a time-limited `regex` search on SQLite, `~` on PostgreSQL."""

    type = Boolean()
    name = "hub_regexp"
    inherit_cache = True


class json_text(FunctionElement[str]):
    """The canonical JSON text of a JSON value, to tell `[]`, `{}` and `null` apart."""

    type = String()
    name = "json"
    inherit_cache = True


class json_list_has_any(FunctionElement[bool]):
    """`json_list_has_any(column, tag, ...)`: the JSON array holds at least one of the tags."""

    type = Boolean()
    name = "hub_json_list_has_any"
    inherit_cache = True


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(clause, **kw) for clause in element.clauses]


@compiles(text_fold)
@compiles(text_words)
@compiles(regexp_search)
@compiles(json_text)
def _call(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    # The default (SQLite) rendering: a plain call to the function named by the construct.
    return f"{element.name}({', '.join(_args(element, compiler, **kw))})"


@compiles(text_fold, "postgresql")
def _fold_pg(element: text_fold, compiler: SQLCompiler, **kw: Any) -> str:
    return "lower({})".format(*_args(element, compiler, **kw))


@compiles(text_words, "postgresql")
def _words_pg(element: text_words, compiler: SQLCompiler, **kw: Any) -> str:
    # Runs of non-word characters become one space, like re.findall(r"\w+") joined by spaces.
    inner = "btrim(regexp_replace(lower({}), '\\W+', ' ', 'g'))".format(*_args(element, compiler, **kw))
    return f"(' ' || {inner} || ' ')"


@compiles(regexp_search, "postgresql")
def _regexp_pg(element: regexp_search, compiler: SQLCompiler, **kw: Any) -> str:
    return "({} ~ {})".format(*_args(element, compiler, **kw))


@compiles(json_text, "postgresql")
def _json_text_pg(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(CAST({} AS JSONB) AS TEXT)".format(*_args(element, compiler, **kw))


@compiles(json_list_has_any, "sqlite")
def _has_any_sqlite(element: json_list_has_any, compiler: SQLCompiler, **kw: Any) -> str:
    column, *tags = _args(element, compiler, **kw)
    return (f"EXISTS (SELECT 1 FROM json_each({column}) AS hub_tag "
            f"WHERE hub_tag.value IN ({', '.join(tags)}))")


@compiles(json_list_has_any, "postgresql")
def _has_any_pg(element: json_list_has_any, compiler: SQLCompiler, **kw: Any) -> str:
    # `?|` (any of these strings is an element) is served by a GIN index on the column like `@>`, and
    # its ARRAY of literals folds to one constant, where jsonb_build_array ran again on every row.
    column, *tags = _args(element, compiler, **kw)
    return f"(CAST({column} AS JSONB) ?| ARRAY[{', '.join(f'CAST({tag} AS TEXT)' for tag in tags)}])"


# --- the SQLite side -----------------------------------------------------------------------


def install_sqlite_functions(dbapi_connection: Any, connection_record: Any = None) -> None:
    """Register hub_fold, hub_words and hub_regexp; use as a `connect` event listener."""
    dbapi_connection.create_function("hub_fold", 1, _sqlite_fold, deterministic=True)
    dbapi_connection.create_function("hub_words", 1, _sqlite_words, deterministic=True)
    dbapi_connection.create_function("hub_regexp", 2, _sqlite_regexp, deterministic=True)


def _sqlite_fold(value: object) -> str | None:
    return fold(value) if isinstance(value, str) else None


def _sqlite_words(value: object) -> str | None:
    return words(value) if isinstance(value, str) else None


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


def _sqlite_regexp(value: object, pattern: str) -> int | None:
    if not isinstance(value, str):
        return None
    return int(regex_search(_pattern(pattern), value))

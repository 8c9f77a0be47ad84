"""The one condition language shared by routing rules (Python) and campaign segments (SQL)."""

from hub.routing.conditions.ast import (
    MAX_DEPTH,
    MAX_NODES,
    All,
    AnyOf,
    Condition,
    ConditionError,
    Leaf,
    Not,
    dump,
    validate,
)
from hub.routing.conditions.durations import format_duration, parse_duration
from hub.routing.conditions.explain import Explanation, explain
from hub.routing.conditions.fields import FIELDS, FieldRegistry, FieldSpec, FieldType
from hub.routing.conditions.operators import OPERATORS, Operator, operator
from hub.routing.conditions.predicate import NOW, Facts, Predicate, compile_predicate
from hub.routing.conditions.sql import SQL_OPERATORS, SqlField, compile_sql, sql_operator
from hub.routing.conditions.sqlfuncs import install_sqlite_functions

__all__ = [
    "FIELDS",
    "MAX_DEPTH",
    "MAX_NODES",
    "NOW",
    "OPERATORS",
    "SQL_OPERATORS",
    "All",
    "AnyOf",
    "Condition",
    "ConditionError",
    "Explanation",
    "Facts",
    "FieldRegistry",
    "FieldSpec",
    "FieldType",
    "Leaf",
    "Not",
    "Operator",
    "Predicate",
    "SqlField",
    "compile_predicate",
    "compile_sql",
    "dump",
    "explain",
    "format_duration",
    "install_sqlite_functions",
    "operator",
    "parse_duration",
    "sql_operator",
    "validate",
]

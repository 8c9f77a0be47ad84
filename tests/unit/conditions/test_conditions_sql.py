"""compile_sql: mapping errors and the SQL each dialect gets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Dialect, make_url

from hub.routing.conditions import ConditionError, SqlField, compile_sql, validate

from .model import COLUMNS, rows_table

NOW_AT = datetime(2025, 6, 2, 12, tzinfo=UTC)


def dialect(url: str) -> Dialect:
    return make_url(url).get_dialect()()


SQLITE = dialect("sqlite://")
POSTGRES = dialect("postgresql+asyncpg://")


def sql(data: Any, dialect: Any, columns: Any = COLUMNS) -> str:
    where = compile_sql(validate(data), columns, now=NOW_AT)
    return str(select(rows_table.c.id).where(where).compile(dialect=dialect))


def test_unmapped_fields_are_errors_with_paths() -> None:
    data = {"all": [{"field": "message.body", "op": "is_set"},
                    {"any": [{"field": "case.state", "op": "equals", "value": "x"},
                             {"field": "customer.attributes.vip", "op": "is_set"}]}]}
    with pytest.raises(ConditionError) as caught:
        compile_sql(validate(data), {"message.body": rows_table.c.body}, now=NOW_AT)
    assert caught.value.errors == [
        ("$.all[1].any[0].field", "case.state has no column in this query"),
        ("$.all[1].any[1].field", "customer.attributes.vip has no column in this query"),
    ]


def test_tags_must_be_mapped_as_a_json_list() -> None:
    message = r"\$\.field: customer\.tags must be mapped as json_list, not scalar"
    with pytest.raises(ConditionError, match=message):
        compile_sql(validate({"field": "customer.tags", "op": "contains", "value": "vip"}),
                    {"customer.tags": rows_table.c.tags}, now=NOW_AT)
    with pytest.raises(ConditionError, match="must be mapped as scalar, not json_list"):
        compile_sql(validate({"field": "message.body", "op": "is_set"}),
                    {"message.body": SqlField(rows_table.c.body, "json_list")}, now=NOW_AT)


def test_empty_branches() -> None:
    assert sql({"all": []}, SQLITE).endswith("WHERE 1 = 1")
    assert sql({"any": []}, SQLITE).endswith("WHERE 0 = 1")


def test_tags_use_json_each_on_sqlite_and_one_any_element_test_on_postgres() -> None:
    data = {"field": "customer.tags", "op": "contains_any", "value": ["vip", "spa"]}
    assert "json_each(cond_rows.tags)" in sql(data, SQLITE)
    text = sql(data, POSTGRES)
    assert text.count("CAST(cond_rows.tags AS JSONB) ?| ARRAY[") == 1 and text.count("AS TEXT)") == 2


def test_text_operators_use_the_installed_functions_on_sqlite() -> None:
    assert "hub_words(cond_rows.body)" in sql(
        {"field": "message.body", "op": "contains_any", "value": ["reclamo"]}, SQLITE)
    assert "hub_fold(cond_rows.body)" in sql(
        {"field": "message.body", "op": "contains", "value": "x"}, SQLITE)
    assert "hub_regexp(cond_rows.body" in sql(
        {"field": "message.body", "op": "matches", "value": "x"}, SQLITE)
    assert "(cond_rows.body ~ " in sql({"field": "message.body", "op": "matches", "value": "x"},
                                       POSTGRES)
    assert "regexp_replace(lower(cond_rows.body)" in sql(
        {"field": "message.body", "op": "contains_any", "value": ["x"]}, POSTGRES)

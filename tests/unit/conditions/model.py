"""A small table, random rows and random condition trees for the predicate-vs-SQL property."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text
from sqlalchemy.sql.elements import ColumnElement

from hub.routing.conditions import NOW, SqlField, compile_predicate, explain, validate
from hub.store.types import JsonType, UTCDateTime

NOW_AT = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

metadata = MetaData()
rows_table = Table(
    "cond_rows", metadata,
    Column("id", Integer, primary_key=True),
    Column("body", Text),
    Column("status", String(20)),
    Column("complaints", Integer),
    Column("attachment", Boolean),
    Column("last_contact", UTCDateTime),
    Column("tags", JsonType),
    Column("attrs", JsonType),
)

COLUMNS: dict[str, ColumnElement[Any] | SqlField] = {
    "message.body": rows_table.c.body,
    "conversation.status": rows_table.c.status,
    "customer.open_complaints": rows_table.c.complaints,
    "message.has_attachment": rows_table.c.attachment,
    "customer.last_contact_at": rows_table.c.last_contact,
    "customer.tags": SqlField(rows_table.c.tags, "json_list"),
    "customer.attributes": SqlField(rows_table.c.attrs, "json_object"),
}
FACT_OF_COLUMN = {
    "body": "message.body", "status": "conversation.status", "complaints": "customer.open_complaints",
    "attachment": "message.has_attachment", "last_contact": "customer.last_contact_at",
    "tags": "customer.tags", "attrs": "customer.attributes",
}

ASCII_WORDS = ["reclamo", "aria", "condizionata", "ciao", "Grazie", "URGENT", "a_b", "x1", "caffe", "50%"]
OTHER_WORDS = ["reclamò", "Caffè", "ÉTÉ", "straße", "ﬁne", "İstanbul"]
SEPARATORS = [" ", "  ", ", ", "! ", "-", "\n", "_", "/", "%"]
TAGS = ["vip", "Vip", "spa", "golf", "late checkout"]
PATTERNS = ["^ciao", "reclam[oò]", r"\d", "[a-z]_[a-z]", "(?i)urgent", "condizionata$", "x1|spa", "^$"]


def _words(ascii_only: bool) -> st.SearchStrategy[str]:
    return st.sampled_from(ASCII_WORDS if ascii_only else ASCII_WORDS + OTHER_WORDS)


def texts(ascii_only: bool) -> st.SearchStrategy[str]:
    """Words joined by assorted separators, the empty string included."""
    pairs = st.lists(st.tuples(_words(ascii_only), st.sampled_from(SEPARATORS)), max_size=5)
    return pairs.map(lambda items: "".join(word + sep for word, sep in items).rstrip(" ,!-\n_/%"))


def rows(ascii_only: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Rows for the table, every column nullable."""
    row = st.fixed_dictionaries({
        "body": st.none() | texts(ascii_only),
        "status": st.sampled_from([None, "open", "closed", "Open", ""]),
        "complaints": st.none() | st.integers(0, 3),
        "attachment": st.none() | st.booleans(),
        "last_contact": st.none() | st.sampled_from([0, 30, 119, 120, 121, 60 * 24 * 40]).map(
            lambda minutes: NOW_AT - timedelta(minutes=minutes)),
        "tags": st.none() | st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
        "attrs": st.none() | st.sampled_from([{}, {"other": "x"}]) | st.sampled_from(["yes", "no", ""]).map(
            lambda vip: {"vip": vip}),
    })
    return st.lists(row, min_size=2, max_size=10)


def facts(row: dict[str, Any]) -> dict[str, Any]:
    """The Python-side facts for one row."""
    found: dict[str, Any] = {FACT_OF_COLUMN[name]: value for name, value in row.items() if name != "id"}
    found[NOW] = NOW_AT
    return found


def _leaf(field: str, op: str, values: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    if values is None:
        return st.just({"field": field, "op": op})
    return values.map(lambda value: {"field": field, "op": op, "value": value})


def _text_leaves(field: str, ascii_only: bool, samples: list[str]) -> list[st.SearchStrategy[Any]]:
    words = _words(ascii_only)
    fragments = st.sampled_from(["ec", "aria c", "%", "_b", "a_", "/", "É", "ss"] if not ascii_only
                                else ["ec", "aria c", "%", "_b", "a_", "/"])
    text = st.sampled_from(samples) | words
    return [
        _leaf(field, op, text) for op in ("equals", "not_equals")
    ] + [
        _leaf(field, "in", st.lists(text, max_size=3)),
        _leaf(field, "not_in", st.lists(text, max_size=3)),
        _leaf(field, "contains", fragments | words),
        _leaf(field, "starts_with", fragments | words),
        _leaf(field, "contains_any", st.lists(words | st.just("aria condizionata"), max_size=3)),
        _leaf(field, "matches", st.sampled_from(PATTERNS)),
        _leaf(field, "is_set"),
        _leaf(field, "is_empty"),
    ]


def leaves(ascii_only: bool) -> st.SearchStrategy[Any]:
    """Tests over every column, with values likely to hit."""
    numbers = st.integers(0, 3) | st.just(1.5)
    durations = st.sampled_from(["2h", "1d", 7200, "30m", "119m", 0])
    moments = st.sampled_from([0, 60, 120, 121]).map(
        lambda minutes: (NOW_AT - timedelta(minutes=minutes)).isoformat())
    tag_values = st.sampled_from(TAGS)
    options = [
        *_text_leaves("message.body", ascii_only, ["", "ciao", "aria condizionata"]),
        *_text_leaves("conversation.status", ascii_only, ["open", "Open", "closed", ""]),
        *(_leaf("customer.open_complaints", op, numbers)
          for op in ("equals", "not_equals", "gt", "gte", "lt", "lte")),
        _leaf("customer.open_complaints", "in", st.lists(numbers, max_size=3)),
        _leaf("customer.open_complaints", "is_set"),
        _leaf("message.has_attachment", "equals", st.booleans()),
        _leaf("message.has_attachment", "not_equals", st.booleans()),
        _leaf("message.has_attachment", "is_set"),
        _leaf("customer.last_contact_at", "older_than", durations),
        _leaf("customer.last_contact_at", "within", durations),
        *(_leaf("customer.last_contact_at", op, moments) for op in ("gt", "gte", "lt", "lte")),
        _leaf("customer.last_contact_at", "is_set"),
        _leaf("customer.tags", "contains", tag_values),
        *(_leaf("customer.tags", op, st.lists(tag_values, max_size=3))
          for op in ("contains_any", "in", "not_in")),
        _leaf("customer.tags", "is_set"),
        _leaf("customer.tags", "is_empty"),
        _leaf("customer.attributes", "is_set"),
        _leaf("customer.attributes", "is_empty"),
        *_text_leaves("customer.attributes.vip", ascii_only, ["yes", "no", ""]),
    ]
    return st.one_of(options)


def conditions(ascii_only: bool) -> st.SearchStrategy[Any]:
    """Random trees of all / any / not over the leaves."""
    return st.recursive(
        leaves(ascii_only),
        lambda kids: st.one_of(
            st.lists(kids, max_size=4).map(lambda items: {"all": items}),
            st.lists(kids, max_size=4).map(lambda items: {"any": items}),
            kids.map(lambda item: {"not": item}),
        ),
        max_leaves=8,
    )


def expected_ids(data: Any, table_rows: list[dict[str, Any]]) -> set[int]:
    """The ids the Python predicate accepts; also checks explain agrees with the predicate."""
    cond = validate(data)
    predicate = compile_predicate(cond)
    chosen = set()
    for row in table_rows:
        seen = facts(row)
        result = predicate(seen)
        assert explain(cond, seen).result is result
        if result:
            chosen.add(row["id"])
    return chosen


def numbered(table_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ids 1..n."""
    return [{"id": number, **row} for number, row in enumerate(table_rows, 1)]

"""Every operator, through validate and compile_predicate, plus the registries' contracts."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.routing.conditions import NOW, OPERATORS, SQL_OPERATORS, FieldType, Leaf, compile_predicate, validate
from hub.routing.conditions.operators import REGEX_TIMEOUT, regex_search

NOW_AT = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def holds(field: str, op: str, value: Any, actual: Any, **more: Any) -> bool:
    data = {"field": field, "op": op} if value is ... else {"field": field, "op": op, "value": value}
    return compile_predicate(validate(data))({field: actual, NOW: NOW_AT, **more})


@pytest.mark.parametrize(("field", "op", "value", "actual", "expected"), [
    ("message.channel", "equals", "email", "email", True),
    ("message.channel", "equals", "email", "Email", False),
    ("message.channel", "equals", "email", None, False),
    ("customer.open_complaints", "equals", 1, 1, True),
    ("customer.open_complaints", "equals", 1.0, 1, True),
    ("message.has_attachment", "equals", False, False, True),
    ("message.has_attachment", "equals", False, None, False),
    ("message.channel", "not_equals", "email", "sms", True),
    ("message.channel", "not_equals", "email", "email", False),
    ("message.channel", "not_equals", "email", None, True),
    ("conversation.status", "in", ["open", "pending"], "pending", True),
    ("conversation.status", "in", ["open", "pending"], "closed", False),
    ("conversation.status", "in", [], "open", False),
    ("conversation.status", "in", ["open"], None, False),
    ("customer.tags", "in", ["vip", "golf"], ["spa", "golf"], True),
    ("customer.tags", "in", ["vip"], ["spa"], False),
    ("conversation.status", "not_in", ["open"], "closed", True),
    ("conversation.status", "not_in", ["open"], None, True),
    ("customer.tags", "not_in", ["vip"], ["vip", "spa"], False),
    ("message.body", "contains", "AIR", "Nice aîr here", True),
    ("message.body", "contains", "50%", "sconto 50% oggi", True),
    ("message.body", "contains", "50%", "sconto 500 oggi", False),
    ("message.body", "contains", "x", None, False),
    ("customer.tags", "contains", "vip", ["vip"], True),
    ("customer.tags", "contains", "vip", ["VIP"], False),
    ("customer.tags", "contains", "vip", None, False),
    ("message.body", "contains_any", ["reclamo", "lamentela"], "Ho un Reclamò da fare", True),
    ("message.body", "contains_any", ["reclamo"], "reclamone", False),
    ("message.body", "contains_any", ["aria condizionata"], "L'ARIA  condizionata, rotta!", True),
    ("message.body", "contains_any", ["aria condizionata"], "aria non condizionata", False),
    ("message.body", "contains_any", ["caffe"], "Un caffè?", True),
    ("message.body", "contains_any", [], "anything", False),
    ("customer.tags", "contains_any", ["vip", "spa"], ["spa"], True),
    ("customer.tags", "contains_any", ["vip"], [], False),
    ("message.subject", "starts_with", "re:", "RE: booking", True),
    ("message.subject", "starts_with", "re:", "Fwd: RE: booking", False),
    ("message.subject", "starts_with", "é", "Estate", True),
    ("message.body", "matches", r"\bPNR\s*[A-Z0-9]{6}\b", "my PNR ABC123.", True),
    ("message.body", "matches", r"^PNR", "my PNR", False),
    ("message.body", "matches", "(?i)^my", "MY pnr", True),
    ("message.body", "matches", ".", None, False),
    ("customer.open_complaints", "gt", 1, 2, True),
    ("customer.open_complaints", "gt", 2, 2, False),
    ("customer.open_complaints", "gte", 2, 2, True),
    ("customer.open_complaints", "lt", 2, 1.5, True),
    ("customer.open_complaints", "lte", 2, 3, False),
    ("customer.open_complaints", "lt", 2, None, False),
    ("customer.last_contact_at", "gt", "2025-06-01T00:00:00Z", NOW_AT, True),
    ("customer.last_contact_at", "lt", "2025-06-02T14:00:00+02:00", NOW_AT, False),
    ("customer.last_contact_at", "lte", "2025-06-02T14:00:00+02:00", NOW_AT, True),
    ("customer.last_contact_at", "gte", "2025-06-02T12:00:00", datetime(2025, 6, 2, 12), True),
    ("message.subject", "is_set", ..., "", True),
    ("message.subject", "is_set", ..., None, False),
    ("customer.tags", "is_set", ..., [], True),
    ("message.subject", "is_empty", ..., "", True),
    ("message.subject", "is_empty", ..., "x", False),
    ("customer.tags", "is_empty", ..., [], True),
    ("customer.tags", "is_empty", ..., None, True),
    ("customer.attributes", "is_empty", ..., {}, True),
    ("customer.attributes", "is_empty", ..., {"a": "b"}, False),
    ("customer.last_contact_at", "older_than", "2h", NOW_AT - timedelta(hours=3), True),
    ("customer.last_contact_at", "older_than", "2h", NOW_AT - timedelta(hours=2), False),
    ("customer.last_contact_at", "older_than", 60, NOW_AT - timedelta(seconds=61), True),
    ("customer.last_contact_at", "older_than", "2h", None, False),
    ("customer.last_contact_at", "within", "2h", NOW_AT - timedelta(hours=2), True),
    ("customer.last_contact_at", "within", "1d", NOW_AT - timedelta(days=2), False),
    ("customer.last_contact_at", "within", "15m", datetime(2025, 6, 2, 11, 50), True),
])
def test_operator(field: str, op: str, value: Any, actual: Any, expected: bool) -> None:
    assert holds(field, op, value, actual) is expected


def test_attribute_keys_read_the_dict_or_a_dotted_fact() -> None:
    cond = compile_predicate(validate({"field": "customer.attributes.room", "op": "equals", "value": "101"}))
    assert cond({"customer.attributes": {"room": "101"}})
    assert cond({"customer.attributes.room": "101"})
    assert not cond({"customer.attributes": {"floor": "1"}})
    assert not cond({})


def test_time_operators_need_now_in_the_facts() -> None:
    cond = compile_predicate(validate({"field": "customer.last_contact_at", "op": "within", "value": "1h"}))
    with pytest.raises(ValueError, match="'now'"):
        cond({"customer.last_contact_at": NOW_AT})


def test_empty_all_is_true_and_empty_any_is_false() -> None:
    assert compile_predicate(validate({"all": []}))({})
    assert not compile_predicate(validate({"any": []}))({})
    assert not compile_predicate(validate({"not": {"all": []}}))({})


def test_regex_runs_out_of_time_as_no_match() -> None:
    leaf = validate({"field": "message.body", "op": "matches", "value": "(a+)+$"})
    assert isinstance(leaf, Leaf)
    pattern = leaf.arg
    started = datetime.now(UTC)
    assert regex_search(pattern, "a" * 5000 + "b") is False
    assert (datetime.now(UTC) - started).total_seconds() < REGEX_TIMEOUT * 40


def test_every_operator_is_complete() -> None:
    for name, op in OPERATORS.items():
        assert op.name == name
        assert op.description and "\n" not in op.description
        assert op.accepts and op.accepts <= set(FieldType)
        assert list(inspect.signature(op.test).parameters) == ["actual", "arg", "now"]
        assert name in SQL_OPERATORS, f"{name} has no SQL half"
    assert set(SQL_OPERATORS) == set(OPERATORS)

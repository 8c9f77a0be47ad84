"""validate: the typed tree, and every kind of error with its JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from hub.routing.conditions import (
    FIELDS,
    MAX_DEPTH,
    MAX_NODES,
    All,
    AnyOf,
    ConditionError,
    FieldSpec,
    FieldType,
    Leaf,
    Not,
    dump,
    validate,
)


def errors_of(data: Any, **kw: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConditionError) as caught:
        validate(data, **kw)
    return caught.value.errors


def test_builds_a_frozen_typed_tree() -> None:
    data = {"all": [{"field": "message.body", "op": "contains_any", "value": ["reclamo", "lamentela"]},
                    {"not": {"any": []}}]}
    cond = validate(data)
    assert isinstance(cond, All)
    leaf, negation = cond.children
    assert isinstance(leaf, Leaf) and leaf.path == "$.all[0]" and leaf.value == ("reclamo", "lamentela")
    assert isinstance(negation, Not) and isinstance(negation.child, AnyOf)
    assert negation.child.path == "$.all[1].not"
    assert hash(cond) == hash(validate(data))
    with pytest.raises(AttributeError):
        leaf.op = leaf.op  # type: ignore[misc]


def test_dump_round_trips() -> None:
    data = {"any": [{"field": "customer.tags", "op": "in", "value": ["vip"]},
                    {"not": {"field": "customer.attributes.room", "op": "is_set"}}]}
    assert dump(validate(data)) == data


@pytest.mark.parametrize(("data", "expected"), [
    ({"all": [{"field": "message.bdy", "op": "equals", "value": "x"}]},
     [("$.all[0].field", "unknown field 'message.bdy'")]),
    ({"field": "message.body", "op": "eq", "value": "x"}, [("$.op", "unknown operator 'eq'")]),
    ({"field": "", "op": "is_set"}, [("$.field", "expected a field name")]),
    ({"field": "  ", "op": "is_set"}, [("$.field", "expected a field name")]),
    ({"field": "message.body"}, [("$.op", "expected an operator name")]),
    ({"any": [{}, {"all": [1]}]}, [
        ("$.any[0]", 'expected exactly one of "all", "any", "not", or "field" and "op"'),
        ("$.any[1].all[0]", 'expected an object: {"all": ...}, {"any": ...}, {"not": ...} or a test'),
    ]),
    ({"all": {"field": "x"}}, [("$.all", "expected a list of conditions")]),
    ({"all": [], "any": []}, [("$", 'expected exactly one of "all", "any", "not", or "field" and "op"')]),
    ({"field": "message.body", "op": "is_set", "extra": 1}, [("$.extra", "unknown key in a test")]),
    ({"field": "message.body", "op": "equals"}, [("$.value", "equals needs a value")]),
    ({"field": "message.body", "op": "is_set", "value": 1}, [("$.value", "this operator takes no value")]),
    ({"all": [{"field": "message.body", "op": "contains_any", "value": "reclamo"}]},
     [("$.all[0].value", "expected a list of at most 500 values")]),
    ({"field": "message.body", "op": "contains_any", "value": ["ok", "?!"]},
     [("$.value", "every phrase needs at least one word")]),
    ({"field": "customer.open_complaints", "op": "gt", "value": "2"},
     [("$.value", "expected a number value, got '2'")]),
    ({"field": "customer.open_complaints", "op": "equals", "value": True},
     [("$.value", "expected a number value, got True")]),
    ({"field": "customer.last_contact_at", "op": "gt", "value": "yesterday"},
     [("$.value", "expected an ISO 8601 datetime, got 'yesterday'")]),
    ({"field": "customer.last_contact_at", "op": "within", "value": "2 days"},
     [("$.value", 'expected a duration like "30d", "2h", "15m" or seconds, got \'2 days\'')]),
    ({"field": "message.body", "op": "contains", "value": ""}, [("$.value", "expected a non-empty string")]),
    ({"not": {"field": "message.body", "op": "gt", "value": 3}},
     [("$.not.op", "gt does not apply to message.body (str); it takes datetime, number")]),
    ({"field": "customer.tags", "op": "equals", "value": "vip"},
     [("$.op", "equals does not apply to customer.tags (list[str]); it takes bool, number, str")]),
    ({"field": "customer.attributes.bad key", "op": "is_set"},
     [("$.field", "unknown field 'customer.attributes.bad key'")]),
])
def test_errors_name_the_path(data: Any, expected: list[tuple[str, str]]) -> None:
    assert errors_of(data) == expected


def test_invalid_regex_is_a_validation_error() -> None:
    [(path, message)] = errors_of({"field": "message.subject", "op": "matches", "value": "(unclosed"})
    assert path == "$.value" and message.startswith("invalid regular expression")


def test_collects_every_error() -> None:
    data = {"all": [{"field": "nope", "op": "equals", "value": 1}, {"field": "message.body", "op": "nope"}]}
    assert [path for path, _ in errors_of(data)] == ["$.all[0].field", "$.all[1].op"]


def test_error_message_lists_paths() -> None:
    with pytest.raises(ConditionError, match=r"\$\.op: unknown operator 'x'"):
        validate({"field": "message.body", "op": "x"})


def test_depth_limit() -> None:
    data: Any = {"field": "message.body", "op": "is_set"}
    for _ in range(MAX_DEPTH - 1):
        data = {"not": data}
    validate(data)
    [(path, message)] = errors_of({"not": data})
    assert path == "$" + ".not" * MAX_DEPTH
    assert message == f"nested deeper than {MAX_DEPTH} levels"


def test_node_limit() -> None:
    leaf = {"field": "message.body", "op": "is_set"}
    validate({"any": [leaf] * (MAX_NODES - 1)})
    [(path, message)] = errors_of({"any": [leaf] * MAX_NODES})
    assert path == f"$.any[{MAX_NODES - 1}]"
    assert message == f"too many nodes (more than {MAX_NODES})"


def test_not_an_object() -> None:
    assert errors_of([]) == [("$", 'expected an object: {"all": ...}, {"any": ...}, {"not": ...} or a test')]


def test_registry_resolves_attributes_and_can_be_extended() -> None:
    spec = FIELDS.resolve("customer.attributes.room_type")
    assert spec is not None and spec.type is FieldType.STR and spec.parent == "customer.attributes"
    assert FIELDS.resolve("message.body.x") is None
    assert "booking.nights" not in FIELDS
    extended = FIELDS.extended([FieldSpec("booking.nights", FieldType.NUMBER, "nights booked")])
    assert validate({"field": "booking.nights", "op": "gte", "value": 3}, fields=extended)
    assert errors_of({"field": "booking.nights", "op": "gte", "value": 3}) == [
        ("$.field", "unknown field 'booking.nights'")]
    with pytest.raises(ValueError, match="already registered"):
        extended.register(FieldSpec("booking.nights", FieldType.NUMBER))


def test_every_documented_field_is_registered() -> None:
    names = {spec.name for spec in FIELDS}
    for name in ("message.visible_text", "message.is_autoreply", "conversation.waiting_time",
                 "customer.timezone", "case.workflow", "case.state", "time.business_hours",
                 "time.weekday", "time.hour"):
        assert name in names
    assert all(spec.description for spec in FIELDS)

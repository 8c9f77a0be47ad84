"""explain: every node's result and, for leaves, the value seen."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.routing.conditions import NOW, Explanation, explain, validate

FACTS = {
    "message.body": "Buongiorno, ho un reclamo per l'aria condizionata",
    "customer.tags": ["vip"],
    "customer.open_complaints": 0,
    NOW: datetime(2025, 6, 2, 12, tzinfo=UTC),
}


def test_tree_of_results_with_values_seen() -> None:
    cond = validate({"any": [
        {"all": [{"field": "message.body", "op": "contains_any", "value": ["reclamo"]},
                 {"field": "customer.open_complaints", "op": "gt", "value": 0}]},
        {"not": {"field": "customer.tags", "op": "contains", "value": "vip"}},
    ]})
    tree = explain(cond, FACTS)
    assert tree.result is False
    assert tree.kind == "any" and tree.path == "$"
    both, negation = tree.children
    assert both.result is False
    assert [leaf.result for leaf in both.children] == [True, False]
    complaints = both.children[1]
    assert complaints == Explanation(
        "leaf", "$.any[0].all[1]", False, (), "customer.open_complaints", "gt", 0, 0)
    assert negation.children[0].actual == ["vip"]
    assert tree.render() == "\n".join([
        "✗ any",
        "  ✗ all",
        '    ✓ message.body contains_any ["reclamo"]  '
        '(saw "Buongiorno, ho un reclamo per l\'aria condizionata")',
        "    ✗ customer.open_complaints gt 0  (saw 0)",
        "  ✗ not",
        '    ✓ customer.tags contains "vip"  (saw ["vip"])',
    ])


def test_does_not_short_circuit_and_shows_missing_values() -> None:
    cond = validate({"all": [{"field": "message.subject", "op": "is_set"},
                             {"field": "customer.last_contact_at", "op": "within", "value": "2h"}]})
    tree = explain(cond, FACTS)
    assert [child.result for child in tree.children] == [False, False]
    assert tree.render().splitlines()[1] == "  ✗ message.subject is_set  (saw null)"


def test_long_values_are_cut() -> None:
    cond = validate({"field": "message.body", "op": "is_set"})
    line = explain(cond, {"message.body": "x" * 500}).render()
    assert line.endswith("…)") and len(line) < 140

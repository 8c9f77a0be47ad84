"""Why a condition did or did not hold: the result of every node and the values seen."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.routing.conditions.ast import All, AnyOf, Condition, Leaf, Not
from hub.routing.conditions.predicate import Facts, lookup, now_of

_MAX_SHOWN = 80


@dataclass(frozen=True, slots=True)
class Explanation:
    """One node's result; leaves also carry the field, operator, expected and actual values."""

    kind: str  # all | any | not | leaf
    path: str
    result: bool
    children: tuple[Explanation, ...] = ()
    field: str | None = None
    op: str | None = None
    expected: Any = None
    actual: Any = None

    def render(self, indent: int = 0) -> str:
        """Indented lines for `hub rules test`: a tick or cross, then the test and what was seen."""
        mark = "✓" if self.result else "✗"
        if self.kind != "leaf":
            head = f"{'  ' * indent}{mark} {self.kind}"
            return "\n".join([head, *(child.render(indent + 1) for child in self.children)])
        shown = f" {_show(self.expected)}" if self.expected is not None else ""
        return f"{'  ' * indent}{mark} {self.field} {self.op}{shown}  (saw {_show(self.actual)})"


def explain(cond: Condition, facts: Facts) -> Explanation:
    """Evaluate every node, without short-circuiting, so the whole tree can be shown."""
    if isinstance(cond, All | AnyOf):
        children = tuple(explain(child, facts) for child in cond.children)
        results = [child.result for child in children]
        kind, result = ("all", all(results)) if isinstance(cond, All) else ("any", any(results))
        return Explanation(kind, cond.path, result, children)
    if isinstance(cond, Not):
        child = explain(cond.child, facts)
        return Explanation("not", cond.path, not child.result, (child,))
    return _leaf(cond, facts)


def _leaf(leaf: Leaf, facts: Facts) -> Explanation:
    actual = lookup(facts, leaf)
    result = leaf.op.test(actual, leaf.arg, now_of(facts))
    expected = list(leaf.value) if isinstance(leaf.value, tuple) else leaf.value
    return Explanation("leaf", leaf.path, result, (), leaf.field.name, leaf.op.name, expected, actual)


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        value = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"

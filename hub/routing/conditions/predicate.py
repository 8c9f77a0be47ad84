"""Compile a condition once into nested closures over the facts of one event."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from hub.routing.conditions.ast import All, AnyOf, Condition, Leaf, Not

Facts = Mapping[str, Any]
Predicate = Callable[[Facts], bool]

NOW = "now"


def lookup(facts: Facts, leaf: Leaf) -> Any:
    """The value a leaf tests: its dotted name, else the key inside its dict field."""
    name = leaf.field.name
    if name in facts:
        return facts[name]
    if leaf.field.parent is not None:
        holder = facts.get(leaf.field.parent)
        if isinstance(holder, Mapping):
            return holder.get(leaf.field.key)
    return None


def now_of(facts: Facts) -> datetime | None:
    """The `now` the facts were taken at; the pure code never reads the wall clock."""
    now = facts.get(NOW)
    return now if isinstance(now, datetime) else None


def compile_predicate(cond: Condition) -> Predicate:
    """A function of the facts that says whether the condition holds."""
    if isinstance(cond, All):
        parts = tuple(compile_predicate(child) for child in cond.children)
        return lambda facts: all(part(facts) for part in parts)
    if isinstance(cond, AnyOf):
        parts = tuple(compile_predicate(child) for child in cond.children)
        return lambda facts: any(part(facts) for part in parts)
    if isinstance(cond, Not):
        inner = compile_predicate(cond.child)
        return lambda facts: not inner(facts)
    return _leaf(cond)


def _leaf(leaf: Leaf) -> Predicate:
    test, arg = leaf.op.test, leaf.arg

    def check(facts: Facts) -> bool:
        return test(lookup(facts, leaf), arg, now_of(facts))

    return check

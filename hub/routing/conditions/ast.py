"""The typed condition tree and `validate`, which builds it from JSON data or says what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from hub.routing.conditions.fields import FIELDS, FieldRegistry, FieldSpec
from hub.routing.conditions.operators import OPERATORS, Operator

MAX_DEPTH = 32
MAX_NODES = 1000

_LEAF_KEYS = frozenset({"field", "op", "value"})


class ConditionError(ValueError):
    """A condition that cannot be used; `.errors` lists (json_path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))


@dataclass(frozen=True, slots=True)
class All:
    """True when every child is true; `{"all": []}` is true."""

    children: tuple[Condition, ...]
    path: str = "$"


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when some child is true; `{"any": []}` is false."""

    children: tuple[Condition, ...]
    path: str = "$"


@dataclass(frozen=True, slots=True)
class Not:
    """True when the child is false."""

    child: Condition
    path: str = "$"


@dataclass(frozen=True, slots=True)
class Leaf:
    """One test: `field op value`; `arg` is the value as the operator prepared it."""

    field: FieldSpec
    op: Operator
    value: Any
    arg: Any = dc_field(compare=False)
    path: str = "$"


Condition = All | AnyOf | Not | Leaf


def validate(data: object, *, fields: FieldRegistry = FIELDS) -> Condition:
    """Build the condition tree from JSON data, or raise ConditionError listing every problem."""
    checker = _Checker(fields)
    node = checker.node(data, "$", 1)
    if checker.errors or node is None:
        raise ConditionError(checker.errors or [("$", "not a condition")])
    return node


def dump(cond: Condition) -> dict[str, Any]:
    """The JSON data for a condition tree (the inverse of `validate`)."""
    if isinstance(cond, All):
        return {"all": [dump(child) for child in cond.children]}
    if isinstance(cond, AnyOf):
        return {"any": [dump(child) for child in cond.children]}
    if isinstance(cond, Not):
        return {"not": dump(cond.child)}
    data: dict[str, Any] = {"field": cond.field.name, "op": cond.op.name}
    if cond.op.takes_value:
        data["value"] = list(cond.value) if isinstance(cond.value, tuple) else cond.value
    return data


class _Checker:
    """Walks the JSON once, collecting errors instead of stopping at the first."""

    def __init__(self, fields: FieldRegistry) -> None:
        self.fields = fields
        self.errors: list[tuple[str, str]] = []
        self.count = 0

    def fail(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def node(self, data: object, path: str, depth: int) -> Condition | None:
        self.count += 1
        if self.count > MAX_NODES:
            if self.count == MAX_NODES + 1:
                self.fail(path, f"too many nodes (more than {MAX_NODES})")
            return None
        if depth > MAX_DEPTH:
            self.fail(path, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if not isinstance(data, Mapping):
            self.fail(path, 'expected an object: {"all": ...}, {"any": ...}, {"not": ...} or a test')
            return None
        if "field" in data or "op" in data:
            return self.leaf(data, path)
        return self.branch(data, path, depth)

    def branch(self, data: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        if len(data) != 1 or next(iter(data)) not in ("all", "any", "not"):
            self.fail(path, 'expected exactly one of "all", "any", "not", or "field" and "op"')
            return None
        key, inner = next(iter(data.items()))
        if key == "not":
            child = self.node(inner, f"{path}.not", depth + 1)
            return None if child is None else Not(child, path)
        if not isinstance(inner, list):
            self.fail(f"{path}.{key}", "expected a list of conditions")
            return None
        children = [self.node(item, f"{path}.{key}[{i}]", depth + 1) for i, item in enumerate(inner)]
        kept = tuple(child for child in children if child is not None)
        if len(kept) != len(children):
            return None
        return All(kept, path) if key == "all" else AnyOf(kept, path)

    def leaf(self, data: Mapping[str, Any], path: str) -> Leaf | None:
        for key in sorted(set(data) - _LEAF_KEYS):
            self.fail(f"{path}.{key}", "unknown key in a test")
        spec = self.field(data.get("field"), f"{path}.field")
        op = self.op(data.get("op"), f"{path}.op")
        if spec is None or op is None:
            return None
        if spec.type not in op.accepts:
            accepted = ", ".join(sorted(kind.value for kind in op.accepts))
            self.fail(f"{path}.op", f"{op.name} does not apply to {spec.name} ({spec.type.value}); "
                                    f"it takes {accepted}")
            return None
        return self.value(spec, op, data, path)

    def field(self, name: object, path: str) -> FieldSpec | None:
        if not isinstance(name, str) or not name.strip():
            self.fail(path, "expected a field name")
            return None
        spec = self.fields.resolve(name)
        if spec is None:
            self.fail(path, f"unknown field {name!r}")
        return spec

    def op(self, name: object, path: str) -> Operator | None:
        if not isinstance(name, str) or not name:
            self.fail(path, "expected an operator name")
            return None
        op = OPERATORS.get(name)
        if op is None:
            self.fail(path, f"unknown operator {name!r}")
        return op

    def value(self, spec: FieldSpec, op: Operator, data: Mapping[str, Any], path: str) -> Leaf | None:
        if op.takes_value and "value" not in data:
            self.fail(f"{path}.value", f"{op.name} needs a value")
            return None
        raw = data.get("value")
        try:
            arg = op.parse(spec, raw)
        except ValueError as error:
            self.fail(f"{path}.value", str(error))
            return None
        # Lists become tuples so the tree stays hashable and immutable.
        frozen = tuple(raw) if isinstance(raw, list) else raw
        return Leaf(spec, op, frozen, arg, path)

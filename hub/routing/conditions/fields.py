"""The field registry: every dotted name a condition may test, with its type."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    """The value types a field can hold; operators declare which ones they accept."""

    STR = "str"
    NUMBER = "number"
    BOOL = "bool"
    DATETIME = "datetime"
    STR_LIST = "list[str]"
    DICT = "dict"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field: its dotted name, type and a one-line description for the rule editor."""

    name: str
    type: FieldType
    description: str = ""
    # For `customer.attributes.<key>`: the dict field it lives in and the key inside it.
    parent: str | None = None
    key: str | None = None


# Attribute keys become JSON paths in SQL, so they are kept to a safe, boring alphabet.
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


class FieldRegistry:
    """Fields by dotted name; dict fields also resolve `<dict>.<key>` to a str sub-field."""

    def __init__(self, specs: Iterable[FieldSpec] = ()) -> None:
        self._specs: dict[str, FieldSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: FieldSpec) -> None:
        """Add a field; a name may be registered once."""
        if spec.name in self._specs:
            raise ValueError(f"field {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def extended(self, specs: Iterable[FieldSpec]) -> FieldRegistry:
        """A new registry with these fields added, leaving this one untouched."""
        return FieldRegistry([*self._specs.values(), *specs])

    def __iter__(self) -> Iterator[FieldSpec]:
        return iter(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    def resolve(self, name: str) -> FieldSpec | None:
        """The spec for a name, or None; `customer.attributes.vip` resolves via its dict field."""
        if spec := self._specs.get(name):
            return spec
        parent, _, key = name.rpartition(".")
        holder = self._specs.get(parent)
        if holder is None or holder.type is not FieldType.DICT or not _KEY.fullmatch(key):
            return None
        return FieldSpec(name, FieldType.STR, f"attribute {key!r} of {parent}", parent=parent, key=key)


def _specs(prefix: str, rows: Iterable[tuple[str, FieldType, str]]) -> list[FieldSpec]:
    return [FieldSpec(f"{prefix}.{name}", kind, text) for name, kind, text in rows]


_S, _N, _B, _D, _L, _O = (FieldType.STR, FieldType.NUMBER, FieldType.BOOL, FieldType.DATETIME,
                            FieldType.STR_LIST, FieldType.DICT)

FIELDS = FieldRegistry([
    *_specs("message", [
        ("channel", _S, "email, sms, phone or api"),
        ("direction", _S, "inbound or outbound"),
        ("from", _S, "sender address (normalised email or E.164 phone)"),
        ("to", _S, "recipient address"),
        ("subject", _S, "subject line (email)"),
        ("body", _S, "full text of the message"),
        ("visible_text", _S, "the text without quoted replies and signatures"),
        ("language", _S, "detected language code, e.g. it"),
        ("has_attachment", _B, "the message carries at least one attachment"),
        ("is_autoreply", _B, "an automatic reply (out of office, bounce, bulk)"),
    ]),
    *_specs("conversation", [
        ("status", _S, "open, pending, snoozed or closed"),
        ("assignee", _S, "the assigned agent"),
        ("team", _S, "the assigned team"),
        ("tags", _L, "tags on the conversation"),
        ("priority", _S, "low, normal, high or urgent"),
        ("age", _N, "seconds since the conversation was opened"),
        ("waiting_time", _N, "seconds the customer has been waiting for a reply"),
    ]),
    *_specs("customer", [
        ("lifecycle_stage", _S, "lead, guest, returning, ..."),
        ("tags", _L, "tags on the customer"),
        ("attributes", _O, "custom attributes; test one with customer.attributes.<key>"),
        ("open_complaints", _N, "number of complaints not yet resolved"),
        ("language", _S, "preferred language code"),
        ("last_contact_at", _D, "when we last heard from or wrote to the customer"),
        ("timezone", _S, "IANA timezone name"),
    ]),
    *_specs("case", [
        ("workflow", _S, "the workflow of the open case"),
        ("state", _S, "the state of the case within its workflow"),
    ]),
    *_specs("time", [
        ("business_hours", _B, "now is within the business hours"),
        ("weekday", _N, "day of the week, 0 = Monday ... 6 = Sunday"),
        ("hour", _N, "hour of the day, 0-23, in the business timezone"),
    ]),
])

"""Identity keys: the one normal form for every address a customer can be reached at."""

from __future__ import annotations

import functools
import re

import phonenumbers

from hub.core.envelopes import Address, AddressKind


class InvalidAddress(ValueError):
    """An address that cannot be normalised; the message names the value and why."""


# Deliberately loose: RFC 5321 allows far more than most validators accept, and refusing a
# customer's real address is worse than storing an odd one. We only insist on local@domain.
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\".]+$|^[^@\s<>\"]+@localhost$")


def normalise_email(value: str) -> str:
    """Lower-case and trim an email address; raise InvalidAddress when it has no local@domain."""
    cleaned = value.strip().strip("<>").strip().lower()
    if not _EMAIL.match(cleaned):
        raise InvalidAddress(f"not an email address: {value!r}")
    return cleaned


@functools.lru_cache(maxsize=4096)  # pure, and the costliest step of a webhook: customers write again
def normalise_phone(value: str, region: str = "IT") -> str:
    """Return the E.164 form of a phone number; numbers without a country code use `region`."""
    raw = value.strip()
    if raw.lower().startswith("whatsapp:"):
        raw = raw[len("whatsapp:") :]
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    try:
        parsed = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(f"not a phone number: {value!r} ({exc})") from exc
    if not phonenumbers.is_possible_number(parsed) or not phonenumbers.is_valid_number(parsed):
        raise InvalidAddress(f"not a valid phone number: {value!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise(kind: AddressKind, value: str, region: str = "IT", name: str | None = None) -> Address:
    """Build a normalised Address of the given kind."""
    if kind is AddressKind.EMAIL:
        return Address(kind, normalise_email(value), name)
    return Address(kind, normalise_phone(value, region), name)


def identity_key(address: Address) -> tuple[str, str]:
    """The (kind, value) pair stored in the Identity table; WhatsApp shares the phone identity."""
    kind = AddressKind.PHONE if address.kind is AddressKind.WHATSAPP else address.kind
    return (kind.value, address.value)

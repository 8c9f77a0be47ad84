"""Identity normalisation: one key per address however it is spelt."""

from __future__ import annotations

import pytest

from hub.core.envelopes import Address, AddressKind
from hub.core.identity import InvalidAddress, identity_key, normalise_email, normalise_phone


@pytest.mark.parametrize("raw", ["Giulia.Bianchi@Example.COM", "  giulia.bianchi@example.com ",
                                 "<GIULIA.BIANCHI@example.com>"])
def test_emails_in_mixed_case_share_one_key(raw: str) -> None:
    assert normalise_email(raw) == "giulia.bianchi@example.com"


@pytest.mark.parametrize("raw", ["", "no-at-sign", "two@@example.com", "a b@example.com", "x@nodot"])
def test_invalid_emails_are_refused_with_the_value(raw: str) -> None:
    with pytest.raises(InvalidAddress, match="email"):
        normalise_email(raw)


@pytest.mark.parametrize("raw", ["347 111 2233", "+39 347 111 2233", "0039 347 1112233", "+39-347-111-2233",
                                 "(+39) 3471112233", "whatsapp:+393471112233"])
def test_italian_mobile_spellings_normalise_to_e164(raw: str) -> None:
    assert normalise_phone(raw, "IT") == "+393471112233"


def test_italian_landline_keeps_its_leading_zero() -> None:
    assert normalise_phone("06 1234 5678", "IT") == "+390612345678"


@pytest.mark.parametrize("raw", ["+1 (415) 555-0100", "+1 415.555.0100", "001 415 555 0100"])
def test_us_numbers_with_country_code_normalise_from_any_region(raw: str) -> None:
    assert normalise_phone(raw, "IT") == "+14155550100"


def test_us_number_without_country_code_uses_the_default_region() -> None:
    assert normalise_phone("(415) 555-0100", "US") == "+14155550100"


@pytest.mark.parametrize("raw", ["", "hello", "123", "+39 12", "+1 555 0100 999999999"])
def test_invalid_phone_numbers_raise_a_clear_error(raw: str) -> None:
    with pytest.raises(InvalidAddress, match="phone number"):
        normalise_phone(raw, "IT")


def test_whatsapp_identity_shares_the_phone_key() -> None:
    whatsapp = Address(AddressKind.WHATSAPP, "+393471112233")
    phone = Address(AddressKind.PHONE, "+393471112233")
    assert identity_key(whatsapp) == identity_key(phone) == ("phone", "+393471112233")

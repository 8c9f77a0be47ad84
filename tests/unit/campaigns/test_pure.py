"""Pure campaign helpers: timing, tokens, templates, A/B choice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.campaigns import abtest, mailto, templates, tokens
from hub.campaigns.templates import TemplateProblem, TemplateSource
from hub.campaigns.timing import QuietHours, send_after


def test_nine_local_in_three_zones_and_quiet_hours() -> None:
    start = datetime(2026, 1, 15, 6, 0, tzinfo=UTC)
    assert send_after(start, "Europe/Rome", local_time="09:00") == datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    assert send_after(start, "America/New_York", local_time="09:00") == datetime(2026, 1, 15, 14, 0, tzinfo=UTC)
    assert send_after(start, "Asia/Tokyo", local_time="09:00") == datetime(2026, 1, 16, 0, 0, tzinfo=UTC)
    late = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)  # 23:00 in Rome
    assert send_after(late, "Europe/Rome", quiet=QuietHours.parse("21:00-08:00")) == datetime(
        2026, 1, 16, 7, 0, tzinfo=UTC)
    assert send_after(start, "Not/AZone") == start


def test_tokens_are_bound_to_purpose_and_target() -> None:
    token = tokens.sign("k", "click", 42, "https://a.example/")
    assert tokens.verify("k", "click", token, "https://a.example/") == 42
    for purpose, extra, secret in (("open", "https://a.example/", "k"), ("click", "https://b.example/", "k"),
                                   ("click", "https://a.example/", "other")):
        with pytest.raises(tokens.BadToken):
            tokens.verify(secret, purpose, token, extra)


def test_templates_are_validated_and_rendered_in_a_sandbox() -> None:
    source = TemplateSource("t", "sms", "it", "Ciao {{ customer.first_name | default('ospite') }}")
    templates.validate(source)
    assert templates.render(source, {"customer": {}}).body_text == "Ciao ospite"
    for body in ("{{ customer.__class__.__mro__ }}", "{{ ''.format }}", "{% for %}"):
        with pytest.raises(TemplateProblem):
            templates.validate(TemplateSource("t", "sms", "it", body))
    assert templates.sms_segments("a" * 160) == 1 and templates.sms_segments("a" * 161) == 2
    assert templates.sms_segments("è" * 70) == 2 - 1 and templates.sms_segments("ł" * 71) == 2


def test_ab_winner_is_the_best_rate() -> None:
    assert abtest.choose({"A": 100, "B": 100}, {"A": 10, "B": 30}) == "B"
    assert abtest.choose({}, {}) is None


def test_address_tokens_survive_case_changes_and_name_only_their_recipient() -> None:
    token = tokens.sign_address("k", "unsub", 42)
    assert token == token.lower() and tokens.verify_address("k", "unsub", token.upper()) == 42
    tampered = [token.replace("42.", "43."), token[:-1] + ("0" if token[-1] != "0" else "1"), "42." + "a" * 23]
    for bad, purpose, secret in [(t, "unsub", "k") for t in tampered] + [(token, "open", "k"), (token, "unsub", "j")]:
        with pytest.raises(tokens.BadToken):
            tokens.verify_address(secret, purpose, bad)


def test_unsubscribe_tokens_are_read_from_the_recipient_headers_of_our_domain_only() -> None:
    raw = (b"From: a@example.com\r\nTo: Hotel <UNSUBSCRIBE+1.AB@Hub.Test>, unsubscribe+2.cd@other.test\r\n"
           b"Delivered-To: unsubscribe+3.ef@hub.test\r\nSubject: unsubscribe+4.gh@hub.test\r\n\r\n"
           b"Cc: unsubscribe+5.ij@hub.test\r\n")
    assert mailto.unsubscribe_tokens(raw, "hub.test") == ["1.AB", "3.ef"]
    assert mailto.unsubscribe_tokens(b"From: a@example.com\r\nTo: reception@hub.test\r\n\r\nhi", "hub.test") == []

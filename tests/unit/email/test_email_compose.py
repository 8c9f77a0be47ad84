"""build_message(): headers, threading, reply token, auto-reply marking and injection refusal."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from hub.channels.email.compose import HeaderInjectionError, build_message, normalise_subject
from hub.channels.email.parse import parse
from hub.core.envelopes import Address, AddressKind, AttachmentRef, Channel, Inbound, Outbound


def _out(**kwargs: object) -> Outbound:
    fields: dict[str, object] = {
        "channel": Channel.EMAIL,
        "message_id": 7,
        "sender": Address(AddressKind.EMAIL, "support@hotel.it", "Hotel Bellavista"),
        "recipient": Address(AddressKind.EMAIL, "mario@example.com", "Mario Rossi"),
        "body_text": "Gentile Mario, confermiamo.",
        "subject": "Re: Prenotazione",
    }
    fields.update(kwargs)
    return Outbound(**fields)  # type: ignore[arg-type]


def _build(out: Outbound, **kwargs: object) -> bytes:
    args: dict[str, object] = {
        "domain": "hotel.it",
        "reply_token": None,
        "in_reply_to": None,
        "references": (),
    }
    args.update(kwargs)
    return build_message(out, **args).as_bytes()  # type: ignore[arg-type]


def test_message_has_identity_threading_and_reply_to_token() -> None:
    raw = _build(_out(), reply_token="t0k3n", in_reply_to="b@x", references=["a@x", "b@x"])
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["From"] == "Hotel Bellavista <support@hotel.it>"
    assert msg["To"] == "Mario Rossi <mario@example.com>"
    assert msg["In-Reply-To"] == "<b@x>"
    assert msg["References"] == "<a@x> <b@x>"
    assert msg["Reply-To"].addresses[0].addr_spec == "support+t0k3n@hotel.it"
    assert msg["Message-ID"].endswith("@hotel.it>")
    assert msg["Date"] is not None
    assert msg["Auto-Submitted"] is None


def test_given_external_id_is_the_message_id() -> None:
    msg = message_from_bytes(_build(_out(external_id="fixed-1@hotel.it")), policy=policy.default)
    assert msg["Message-ID"] == "<fixed-1@hotel.it>"


def test_auto_reply_is_marked_auto_replied() -> None:
    msg = message_from_bytes(_build(_out(meta={"auto_reply": True})), policy=policy.default)
    assert msg["Auto-Submitted"] == "auto-replied"


def test_html_alternative_and_attachment_round_trip_through_parse() -> None:
    att = AttachmentRef("menù.pdf", "application/pdf", 4, content=b"%PDF")
    raw = _build(_out(body_html="<p>Gentile <b>Mario</b></p>", attachments=(att,)), reply_token="tok1")
    item = parse(raw, mailbox="mario@example.com")
    assert isinstance(item, Inbound)
    assert item.body_text.strip() == "Gentile Mario, confermiamo."
    assert item.body_html is not None and "<b>Mario</b>" in item.body_html
    assert [(a.filename, a.content) for a in item.attachments] == [("menù.pdf", b"%PDF")]


@pytest.mark.parametrize(
    ("kwargs", "header"),
    [
        ({"subject": "Hi\r\nBcc: victim@x"}, "Subject"),
        ({"subject": "Hi\nBcc: victim@x"}, "Subject"),
        ({"subject": "Hi\x00"}, "Subject"),
        ({"recipient": Address(AddressKind.EMAIL, "m@x.it", "Mario\r\nBcc: v@x")}, "To"),
        ({"sender": Address(AddressKind.EMAIL, "s@hotel.it", "Hotel\nX: y")}, "From"),
        ({"headers": (("X-Campaign", "a\r\nBcc: v@x"),)}, "X-Campaign"),
        ({"headers": (("X-Bad\r\nBcc", "v"),)}, "X-Bad\r\nBcc"),
    ],
)
def test_header_injection_is_refused_naming_the_header(kwargs: dict[str, object], header: str) -> None:
    with pytest.raises(HeaderInjectionError) as info:
        _build(_out(**kwargs))
    assert info.value.header == header


def test_injection_in_threading_ids_is_refused() -> None:
    with pytest.raises(HeaderInjectionError):
        _build(_out(), in_reply_to="a@x>\r\nBcc: v@x")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Prenotazione", "Prenotazione"),
        ("RE: R: I: Fwd: Prenotazione", "Prenotazione"),
        ("AW: WG: Buchung", "Buchung"),
        ("SV: TR: RIF: Fw: x", "x"),
        ("Re[2]: [Ticket #4] Re: camera", "[Ticket #4] Re: camera"),
        ("Reservation: camera", "Reservation: camera"),
    ],
)
def test_normalise_subject_strips_reply_and_forward_prefixes(subject: str, expected: str) -> None:
    assert normalise_subject(subject) == expected

"""render() against build_message(): the bytes the sender writes itself parse back like the EmailMessage did.

The old way (build_message, flattened with policy.SMTP as aiosmtplib's send_message does) is the
reference. For every input both either fail with the same error, or give messages whose headers
are byte for byte the same (except Date, which holds the clock, and the MIME framing) and whose
parts have the same types, charsets and text (line ends normalised: the old 8bit parts keep CRLF).
"""

from __future__ import annotations

import email
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.channels.email.compose import HeaderInjectionError, build_message, render
from hub.channels.email.smtp import wire
from hub.core.envelopes import Address, AddressKind, AttachmentRef, Channel, Outbound

_FRAMING = frozenset({"date", "content-type", "content-transfer-encoding", "mime-version"})


def _out(**kwargs: object) -> Outbound:
    fields: dict[str, object] = {
        "channel": Channel.EMAIL, "message_id": 7,
        "sender": Address(AddressKind.EMAIL, "reception@hotel.it", "Hotel Bellavista"),
        "recipient": Address(AddressKind.EMAIL, "mario@example.com", "Mario Rossi"),
        "body_text": "Gentile Mario, confermiamo.", "subject": "Re: Prenotazione", "external_id": "m1@hotel.it",
    }
    fields.update(kwargs)
    return Outbound(**fields)  # type: ignore[arg-type]


def _old(out: Outbound, args: dict[str, object]) -> bytes:
    return build_message(out, **args).as_bytes(policy=policy.SMTP)  # type: ignore[arg-type]


def _header_lines(raw: bytes, skip: frozenset[str] = _FRAMING) -> list[bytes]:
    """Each header of the top level as its exact (folded) bytes, framing headers left out."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    lines: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            lines[-1] += b"\r\n" + line
        else:
            lines.append(line)
    return sorted(line for line in lines if line.split(b":", 1)[0].lower().decode() not in skip)


def _leaves(msg: Message) -> list[tuple[str, str | None, str]]:
    """(content type, charset, text with LF line ends) of every leaf part."""
    parts = msg.walk() if msg.is_multipart() else [msg]
    return [(p.get_content_type(), p.get_content_charset(), p.get_content().replace("\r\n", "\n"))  # type: ignore[attr-defined]
            for p in parts if not p.is_multipart()]


def _outcome(build: object) -> tuple[str, bytes | BaseException]:
    try:
        return "ok", build()  # type: ignore[operator]
    except ValueError as exc:  # HeaderInjectionError included
        return "error", exc


def assert_same_mail(out: Outbound, **kwargs: object) -> None:
    """render() and build_message() agree on `out` (or fail alike)."""
    args: dict[str, object] = {"domain": "hotel.it", "reply_token": None, "in_reply_to": None, "references": (),
                               **kwargs}
    now = datetime.now(UTC)
    rendered = _outcome(lambda: render(out, now=now, **args))  # type: ignore[arg-type]
    old = _outcome(lambda: _old(out, args))
    if old[0] == "error" or rendered[0] == "error":
        assert (type(rendered[1]), str(rendered[1])) == (type(old[1]), str(old[1]))
        return
    assert isinstance(rendered[1], tuple) and isinstance(old[1], bytes)
    new_raw, msgid = rendered[1]
    skip = _FRAMING if out.external_id else _FRAMING | {"message-id"}  # else a fresh random id each
    assert _header_lines(new_raw, skip) == _header_lines(old[1], skip)
    new, ref = (email.message_from_bytes(raw, policy=policy.default) for raw in (new_raw, old[1]))
    assert isinstance(new, EmailMessage) and isinstance(ref, EmailMessage)
    assert new.get_content_type() == ref.get_content_type()
    assert _leaves(new) == _leaves(ref)
    assert new["Date"].datetime == now.replace(microsecond=0)
    assert msgid == str(new["Message-ID"]).strip("<>") and msgid.endswith("@hotel.it")
    if out.external_id:
        assert msgid == str(ref["Message-ID"]).strip("<>")
    assert max(len(line) for line in new_raw.split(b"\r\n")) <= 998 and new_raw.isascii()


_names = st.one_of(st.just(""), st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
                   st.sampled_from(["Hotel Città", "Smith, John", 'A "quoted" name', "J. R. R.", "=?utf-8?q?x?=",
                                    "Ω" * 30, "Back\\slash", " padded ", "x" * 80]))
_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
_subjects = st.one_of(st.none(), _texts, st.sampled_from(["Re: Prenotazione n°5 – Ferragosto", "x " * 60,
                                                          "Re: " + "Zimmer für zwei " * 8, "Hi\nBcc: v@x"]))
_bodies = st.one_of(_texts, st.sampled_from(["a" * 200, "è" * 100, "riga\r\naltra\rterza\n", "", "\x00nul",
                                             "line one\n" * 20 + "é", "x" * 77 + "\n" + "y" * 79]))
_ids = st.sampled_from(["a@x.it", "<b@x.it>", "c.d@e.f", "weird id", "é@x", "a" * 90 + "@x.it"])


@settings(max_examples=400, deadline=None)
@given(sender=_names, recipient=_names, subject=_subjects, body=_bodies,
       html=st.one_of(st.none(), st.just("<p>Ciao <b>è</b></p>"), _texts),
       token=st.one_of(st.none(), st.sampled_from(["tok1", "a.b=c-d_e", "bad token"])),
       in_reply_to=st.one_of(st.none(), _ids), references=st.lists(_ids, max_size=12),
       extra=st.lists(st.tuples(st.sampled_from(["X-Campaign", "List-Unsubscribe", "X-Tag"]), _texts), max_size=2),
       auto=st.booleans())
def test_render_parses_back_like_build_message(
    sender: str, recipient: str, subject: str | None, body: str, html: str | None, token: str | None,
    in_reply_to: str | None, references: Sequence[str], extra: list[tuple[str, str]], auto: bool,
) -> None:
    out = _out(sender=Address(AddressKind.EMAIL, "reception@hotel.it", sender or None),
               recipient=Address(AddressKind.EMAIL, "mario.rossi@example.com", recipient or None),
               subject=subject, body_text=body, body_html=html or None, headers=tuple(extra),
               meta={"auto_reply": True} if auto else {})
    assert_same_mail(out, reply_token=token, in_reply_to=in_reply_to, references=references)


@pytest.mark.parametrize("kwargs", [
    {},
    {"subject": None},
    {"external_id": None},
    {"body_html": "<p>Gentile <b>Mario</b></p>"},
    {"body_text": "Très bien, à demain!\n" * 30, "subject": "Réservation confirmée pour la semaine prochaine, merci"},
    {"body_text": "长" * 500, "sender": Address(AddressKind.EMAIL, "reception@hotel.it", "酒店前台")},
    {"recipient": Address(AddressKind.EMAIL, "x@example.com", "Rossi, Mario (VIP)")},
    {"subject": "Hi\r\nBcc: victim@x"},
    {"recipient": Address(AddressKind.EMAIL, "m@x.it", "Mario\r\nBcc: v@x")},
    {"headers": (("X-Campaign", "a\r\nBcc: v@x"),)},
    {"headers": (("X-Campaign", "spring\x0bsale"),)},
    {"recipient": Address(AddressKind.EMAIL, "not an address")},
])
def test_render_matches_build_message_on_chosen_cases(kwargs: dict[str, object]) -> None:
    assert_same_mail(_out(**kwargs), reply_token="t0k", in_reply_to="b@x.it", references=["a@x.it", "b@x.it"])


def test_injection_is_refused_naming_the_header() -> None:
    with pytest.raises(HeaderInjectionError) as info:
        render(_out(subject="Hi\nBcc: v@x"), domain="h.it", reply_token=None, in_reply_to=None, references=())
    assert info.value.header == "Subject"


@pytest.mark.parametrize("kwargs", [
    {"attachments": (AttachmentRef("a.pdf", "application/pdf", 4, content=b"%PDF"),)},
    {"recipient": Address(AddressKind.EMAIL, "mario@exämple.it")},
    {"headers": (("Cc", "boss@hotel.it"),)},
    {"headers": (("Content-Type", "text/html"),)},
])
def test_what_render_does_not_write_is_left_to_build_message(kwargs: dict[str, object]) -> None:
    out = _out(**kwargs)
    assert render(out, domain="h.it", reply_token=None, in_reply_to=None, references=()) is None
    assert isinstance(wire(out, "h.it"), EmailMessage)


_LONG_UNSUB = ("<mailto:unsubscribe+eyJhbGciOiJIUzI1NiJ9.eyJjIjoxMjM0NTY3ODkwfQ.abcdefghijklmnop@hub.localhost>, "
               "<https://hub.example.org/u/eyJhbGciOiJIUzI1NiJ9.eyJjIjoxMjM0NTY3ODkwfQ.abcdefghijklmnopqrstuv>")


@pytest.mark.parametrize("build", ["render", "build_message"])
def test_long_plain_headers_fold_at_spaces_not_into_encoded_words(build: str) -> None:
    out = _out(headers=(("List-Unsubscribe", _LONG_UNSUB),))
    args: dict[str, object] = {"domain": "hotel.it", "reply_token": None, "in_reply_to": "z" * 100 + "@x.it",
                               "references": ["a" * 90 + "@x.it", "b@x.it"]}
    rendered = render(out, **args) if build == "render" else None  # type: ignore[arg-type]
    raw = rendered[0] if rendered is not None else _old(out, args)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?" not in head
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["List-Unsubscribe"] == _LONG_UNSUB
    assert msg["References"] == f"<{'a' * 90}@x.it> <b@x.it> <{'z' * 100}@x.it>"
    unfolded = head.replace(b"\r\n ", b" ").decode()
    assert f"List-Unsubscribe: {_LONG_UNSUB}\r\n" in unfolded + "\r\n"

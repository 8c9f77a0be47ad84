"""parse(): MIME decoding, charsets, attachments, threading refs and identity of the sender."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from hub.channels.email.parse import EmailParseError, parse
from hub.core.envelopes import AddressKind, Flag, Inbound

MAILBOX = "support@hotel.it"


def _inbound(raw: bytes, **kwargs: object) -> Inbound:
    result = parse(raw, mailbox=MAILBOX, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Inbound)
    return result


def _mail(body: str = "Hello", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "Mario Rossi <Mario.Rossi@Example.COM>")
    msg["To"] = headers.pop("To", MAILBOX)
    msg["Subject"] = headers.pop("Subject", "Prenotazione")
    msg["Date"] = headers.pop("Date", "Mon, 03 Mar 2025 10:00:00 +0100")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (b"=?UTF-8?B?Q2FmZsOoIGUgY29ybmV0dG8=?=", "Caffè e cornetto"),
        (b"=?utf-8?q?Caff=C3=A8_e_cornetto?=", "Caffè e cornetto"),
        (b"=?ISO-8859-1?Q?Caff=E8_e_cornetto?=", "Caffè e cornetto"),
        (b"=?iso-8859-1?b?Q2FmZugZSBjb3JuZXR0bw==?=", None),
        (b"=?windows-1252?Q?=93Caff=E8=94_=80?=", "\u201cCaffè\u201d €"),
    ],
)
def test_encoded_word_subjects_are_decoded_in_each_charset(encoded: bytes, expected: str | None) -> None:
    raw = b"From: a@b.it\r\nSubject: " + encoded + b"\r\n\r\nhi\r\n"
    subject = _inbound(raw).subject
    assert subject is not None
    if expected is not None:
        assert subject == expected


def test_encoded_display_name_is_decoded_and_address_lower_cased() -> None:
    raw = b"From: =?iso-8859-1?q?J=F6rg_M=FCller?= <Jorg.Muller@Example.COM>\r\n\r\nhi\r\n"
    sender = _inbound(raw).sender
    assert sender.kind is AddressKind.EMAIL
    assert sender.value == "jorg.muller@example.com"
    assert sender.name == "Jörg Müller"


def test_undeclared_latin1_bytes_in_headers_and_body_are_kept() -> None:
    raw = "From: J\xf6rg <j@x.it>\r\nSubject: Caff\xe8\r\n\r\nPerch\xe9 no?\r\n".encode("latin-1")
    item = _inbound(raw)
    assert item.subject == "Caffè"
    assert item.sender.name == "Jörg"
    assert item.body_text.strip() == "Perché no?"


def test_wrongly_declared_utf8_part_falls_back_to_windows_1252() -> None:
    raw = (
        b"From: a@b.it\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n\x93Citt\xe0\x94 \x80 5\r\n"
    )
    item = _inbound(raw)
    assert item.body_text.strip() == "\u201cCittà\u201d € 5"
    assert item.meta["charset_fallbacks"] == ["utf-8->windows-1252"]


def test_quoted_printable_and_base64_bodies_are_decoded() -> None:
    qp = (
        b"From: a@b.it\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaff=E8=\r\n ok\r\n"
    )
    b64 = (
        b"From: a@b.it\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nQ2FmZsOoIG9r\r\n"
    )
    assert _inbound(qp).body_text.strip() == "Caffè ok"
    assert _inbound(b64).body_text.strip() == "Caffè ok"


def test_nul_bytes_are_stripped_from_subject_and_body() -> None:
    raw = b"From: a@b.it\r\nSubject: a\x00b\r\n\r\nhel\x00lo\r\n"
    item = _inbound(raw)
    assert item.subject == "ab"
    assert item.body_text.strip() == "hello"


def test_text_plain_is_preferred_and_html_kept_sanitised() -> None:
    msg = _mail("Plain version")
    msg.add_alternative(
        '<p onclick="x()">HTML <script>alert(1)</script><a href="javascript:evil()">link</a></p>',
        subtype="html",
    )
    item = _inbound(msg.as_bytes())
    assert item.body_text.strip() == "Plain version"
    assert item.body_html is not None
    for banned in ("script", "alert", "onclick", "javascript:"):
        assert banned not in item.body_html


def test_html_only_mail_is_converted_to_text_with_quotes_recognised() -> None:
    msg = _mail()
    msg.set_content(
        "<html><head><style>p{color:red}</style></head><body><p>Grazie,<br>arrivo alle 18.</p>"
        "<div>Il giorno lun 3 mar 2025, Hotel ha scritto:</div>"
        "<blockquote><p>Confermiamo la prenotazione.</p></blockquote></body></html>",
        subtype="html",
    )
    item = _inbound(msg.as_bytes())
    assert "arrivo alle 18." in item.body_text
    assert "color:red" not in item.body_text
    assert "> Confermiamo" in item.body_text
    assert item.visible_text == "Grazie,\narrivo alle 18."
    assert item.body_html is not None and "<style>" not in item.body_html


def test_rfc2231_filename_attachment_is_kept_with_hash() -> None:
    raw = (
        b"From: a@b.it\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--XX\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''fattura%20n%C2%B01%20caff%C3%A8.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n"
    )
    item = _inbound(raw)
    (att,) = item.attachments
    assert att.filename == "fattura n°1 caffè.pdf"
    assert att.content == b"%PDF-1.4\n"
    assert att.size == 9
    assert att.sha256 == hashlib.sha256(b"%PDF-1.4\n").hexdigest()
    assert not att.inline


def test_inline_image_keeps_content_id() -> None:
    msg = _mail("text")
    msg.add_alternative('<p>logo <img src="cid:logo1@x"></p>', subtype="html")
    html_part = msg.get_payload()[1]  # type: ignore[index]
    html_part.add_related(
        b"\x89PNG....", maintype="image", subtype="png", cid="<logo1@x>", filename="logo.png"
    )
    item = _inbound(msg.as_bytes())
    (att,) = item.attachments
    assert att.inline
    assert att.content_id == "logo1@x"
    assert att.filename == "logo.png"
    assert item.body_html is not None and "cid:logo1@x" in item.body_html


def test_oversize_attachment_is_refused_in_meta_and_flags_truncated() -> None:
    msg = _mail("big one")
    msg.add_attachment(b"x" * 2000, maintype="application", subtype="octet-stream", filename="big.bin")
    msg.add_attachment(b"small", maintype="text", subtype="csv", filename="ok.csv")
    item = _inbound(msg.as_bytes(), max_attachment_bytes=1000)
    assert [a.filename for a in item.attachments] == ["ok.csv"]
    (refused,) = item.meta["refused_attachments"]
    assert refused["filename"] == "big.bin"
    assert refused["size"] == 2000
    assert "limit" in refused["reason"]
    assert Flag.TRUNCATED in item.flags


def test_message_id_is_the_external_id_without_brackets() -> None:
    item = _inbound(_mail(Message_ID="<abc.123@mail.example.com>").as_bytes())
    assert item.external_id == "abc.123@mail.example.com"


def test_missing_message_id_uses_hash_of_raw_bytes() -> None:
    raw = _mail().as_bytes()
    item = _inbound(raw)
    assert item.external_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert item.raw == raw


def test_thread_refs_put_reply_token_then_in_reply_to_then_references_newest_first() -> None:
    msg = _mail(
        To="Hotel <support+t0k3n@hotel.it>, other+nottoken@gmail.com",
        In_Reply_To="<c@x>",
        References="<a@x> <b@x> <c@x>",
    )
    item = _inbound(msg.as_bytes())
    assert item.thread_refs == ("token:t0k3n", "c@x", "b@x", "a@x")


def test_reply_token_is_found_in_cc_and_delivered_to() -> None:
    msg = _mail(Cc="support+cc1@hotel.it", Delivered_To="support+dt2@hotel.it")
    assert _inbound(msg.as_bytes()).thread_refs == ("token:cc1", "token:dt2")


def test_date_becomes_aware_utc_and_missing_date_falls_back_to_now() -> None:
    item = _inbound(_mail().as_bytes())
    assert item.received_at == datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert _inbound(b"From: a@b.it\r\nDate: not a date\r\n\r\nx", now=now).received_at == now
    assert _inbound(b"From: a@b.it\r\n\r\nx", now=now).received_at == now


def test_recipient_is_the_mailbox_and_useful_headers_are_kept() -> None:
    item = _inbound(_mail(Message_ID="<m@x>", Precedence="bulk", List_Id="<news.x>").as_bytes())
    assert item.recipient.value == MAILBOX
    headers = dict(item.headers)
    assert headers["Message-ID"] == "<m@x>"
    assert headers["List-Id"] == "<news.x>"
    assert Flag.BULK in item.flags


def test_visible_text_strips_italian_outlook_reply() -> None:
    body = (
        "Va bene, grazie.\n\n"
        "-----Messaggio originale-----\nDa: Hotel <support@hotel.it>\nInviato: lunedì 3 marzo 2025 10:00\n"
        "A: Mario\nOggetto: Prenotazione\n\nConfermiamo.\n"
    )
    assert _inbound(_mail(body).as_bytes()).visible_text == "Va bene, grazie."


def test_autoreply_headers_become_flags() -> None:
    item = _inbound(
        _mail(Auto_Submitted="auto-replied", Subject="Risposta automatica: Prenotazione").as_bytes()
    )
    assert Flag.AUTOREPLY in item.flags


@pytest.mark.parametrize(
    "raw",
    [b"", b"\r\n\r\n", b"\x00\x00", b"From: nobody\r\n\r\nbody", b"Subject: no from\r\n\r\nx", b"garbage"],
)
def test_unusable_input_raises_email_parse_error(raw: bytes) -> None:
    with pytest.raises(EmailParseError):
        parse(raw, mailbox=MAILBOX)


def test_forwarded_message_attachment_is_kept_whole() -> None:
    inner = _mail("inner body", Subject="inner")
    outer = _mail("see below")
    outer.add_attachment(inner)
    item = _inbound(outer.as_bytes())
    assert item.body_text.strip() == "see below"
    (att,) = item.attachments
    assert att.content_type == "message/rfc822"
    assert att.content is not None and b"inner body" in att.content

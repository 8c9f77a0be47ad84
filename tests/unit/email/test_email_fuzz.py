"""Fuzzing parse(): mutated real mail yields an Inbound/DeliveryUpdate or EmailParseError, nothing else."""

from __future__ import annotations

import contextlib
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.channels.email.parse import EmailParseError, parse
from hub.core.envelopes import DeliveryUpdate, Inbound
from tests.unit.email._email_corpus import CORPUS


def _built() -> list[bytes]:
    msg = EmailMessage()
    msg["From"] = "=?utf-8?q?Caff=C3=A8?= <a@b.it>"
    msg["To"] = "support+tok@hotel.it"
    msg["Subject"] = "Prenotazione è"
    msg["References"] = "<a@x> <b@x>"
    msg.set_content("Ciao\n\nIl giorno lun, Hotel ha scritto:\n> vecchio")
    msg.add_alternative("<p>Ciao <script>x</script></p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="fattura è.pdf")
    dsn = (
        b"From: MAILER-DAEMON@mx.x\r\nTo: support@hotel.it\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nsorry\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.x\r\n\r\n"
        b"Final-Recipient: rfc822; b@x.it\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <o@h.it>\r\n--B--\r\n"
    )
    return [msg.as_bytes(), dsn]


SEEDS = [
    p.read_bytes() for p in sorted((CORPUS / "mailgun_talon" / "standard_replies").glob("*.eml"))
] + _built()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with byte flips, a truncation and/or a duplicated header line."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        lines = bytes(data).split(b"\n")
        header_end = lines.index(b"") if b"" in lines else len(lines)
        if header_end:
            line = lines[draw(st.integers(0, header_end - 1))]
            lines.insert(draw(st.integers(0, header_end)), line)
        data = bytearray(b"\n".join(lines))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_mutated_mail_parses_or_raises_email_parse_error(raw: bytes) -> None:
    try:
        result = parse(raw, mailbox="support@hotel.it")
    except EmailParseError:
        return
    assert isinstance(result, Inbound | DeliveryUpdate)
    if isinstance(result, Inbound):
        assert "\x00" not in result.body_text
        assert result.received_at.tzinfo is not None


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise_anything_but_email_parse_error(raw: bytes) -> None:
    with contextlib.suppress(EmailParseError):
        parse(raw, mailbox="support@hotel.it")

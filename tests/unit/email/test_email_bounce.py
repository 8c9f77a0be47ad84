"""Bounces: RFC 3464 DSNs and qmail-style failure notices become DeliveryUpdates."""

from __future__ import annotations

from hub.channels.email.parse import parse
from hub.core.envelopes import DeliveryState, DeliveryUpdate, Flag, Inbound

MAILBOX = "support@hotel.it"


def _dsn(action: str, status: str, returned: str = "headers", envelope_id: str = "") -> bytes:
    returned_part = {
        "headers": (
            "Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <orig-1@hotel.it>\r\nSubject: Conferma\r\n"
        ),
        "message": (
            "Content-Type: message/rfc822\r\n\r\nFrom: support@hotel.it\r\nTo: bob@example.com\r\n"
            "Message-ID: <orig-2@hotel.it>\r\nSubject: Conferma\r\n\r\nBody\r\n"
        ),
        "none": "Content-Type: text/plain\r\n\r\nnothing returned\r\n",
    }[returned]
    env = f"Original-Envelope-Id: {envelope_id}\r\n" if envelope_id else ""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: support@hotel.it\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.example.com>\r\nDate: Tue, 04 Mar 2025 08:00:00 +0000\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.com\r\n{env}\r\n"
        f"Final-Recipient: rfc822; Bob@Example.com\r\nAction: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected\r\n\r\n"
        f"--BB\r\n{returned_part}--BB--\r\n"
    ).encode()


def _update(raw: bytes) -> DeliveryUpdate:
    result = parse(raw, mailbox=MAILBOX)
    assert isinstance(result, DeliveryUpdate)
    return result


def test_permanent_failure_is_bounced_and_permanent() -> None:
    update = _update(_dsn("failed", "5.1.1"))
    assert update.state is DeliveryState.BOUNCED
    assert update.permanent
    assert update.original_ref == "orig-1@hotel.it"
    assert update.recipient == "bob@example.com"
    assert update.code == "5.1.1"
    assert "Recipient address rejected" in update.detail
    assert update.external_id == "dsn-1@mx.example.com"


def test_original_message_id_is_read_from_attached_message() -> None:
    assert _update(_dsn("failed", "5.1.1", returned="message")).original_ref == "orig-2@hotel.it"


def test_original_envelope_id_is_used_when_nothing_is_returned() -> None:
    assert _update(_dsn("failed", "5.1.1", returned="none", envelope_id="env-42")).original_ref == "env-42"


def test_temporary_failure_is_undelivered_not_permanent() -> None:
    update = _update(_dsn("failed", "4.2.2"))
    assert update.state is DeliveryState.UNDELIVERED
    assert not update.permanent


def test_delayed_notice_keeps_message_sent() -> None:
    update = _update(_dsn("delayed", "4.4.7"))
    assert update.state is DeliveryState.SENT
    assert not update.permanent


def test_dsn_without_any_original_reference_stays_an_inbound_flagged_bounce() -> None:
    item = parse(_dsn("failed", "5.1.1", returned="none"), mailbox=MAILBOX)
    assert isinstance(item, Inbound)
    assert Flag.BOUNCE in item.flags
    assert "Final-Recipient" in item.body_text


def test_qmail_bounce_with_copy_of_headers_is_recognised() -> None:
    raw = (
        b"From: MAILER-DAEMON@mail.example.org\r\nTo: support@hotel.it\r\nSubject: failure notice\r\n\r\n"
        b"Hi. This is the qmail-send program at mail.example.org.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n"
        b"<nobody@example.org>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n"
        b"Message-ID: <orig-9@hotel.it>\r\nFrom: support@hotel.it\r\nSubject: Conferma\r\n\r\nCiao\r\n"
    )
    update = _update(raw)
    assert update.original_ref == "orig-9@hotel.it"
    assert update.recipient == "nobody@example.org"
    assert update.code == "5.1.1"
    assert update.permanent

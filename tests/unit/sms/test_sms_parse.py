from datetime import UTC, datetime

import pytest

from hub.channels.sms.parse import (
    WebhookFormError,
    advance,
    media_filename,
    parse_inbound,
    parse_status,
)
from hub.core.envelopes import AddressKind, Channel, DeliveryState, Flag

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
SID = "SM1f0e8ae6ade43cb3c0ce4525424e404f"
MMS_SID = "MMc781610ec0b3400c9e0cab8e757da937"


def sms_form(**changes: str) -> dict[str, str]:
    """An incoming-SMS webhook form as Twilio posts it."""
    form = {
        "ToCountry": "IT",
        "ToState": "",
        "SmsMessageSid": SID,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": SID,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": "Buongiorno, la doccia della camera 12 non funziona",
        "FromCountry": "IT",
        "To": "+390612345678",
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": SID,
        "AccountSid": "ACae1b6f6cd4a2b8a4d4b3e1f6c4d2a1b0",
        "From": "+393471234567",
        "ApiVersion": "2010-04-01",
    }
    form.update(changes)
    return form


def whatsapp_form(**changes: str) -> dict[str, str]:
    """An incoming WhatsApp webhook form as Twilio posts it."""
    form = {
        "SmsMessageSid": SID,
        "NumMedia": "0",
        "ProfileName": "Mario Rossi",
        "MessageType": "text",
        "SmsSid": SID,
        "WaId": "393471234567",
        "SmsStatus": "received",
        "Body": "Ciao, a che ora è la colazione?",
        "To": "whatsapp:+14155238886",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": SID,
        "AccountSid": "ACae1b6f6cd4a2b8a4d4b3e1f6c4d2a1b0",
        "From": "whatsapp:+393471234567",
        "ApiVersion": "2010-04-01",
    }
    form.update(changes)
    return form


def test_sms() -> None:
    item = parse_inbound(sms_form(), now=NOW)
    assert item.channel is Channel.SMS
    assert item.external_id == SID
    assert item.sender.kind is AddressKind.PHONE
    assert item.sender.value == "+393471234567"
    assert item.recipient.value == "+390612345678"
    assert item.body_text.startswith("Buongiorno")
    assert item.received_at == NOW
    assert item.flags == frozenset()
    assert item.attachments == ()
    assert item.meta["form"]["AccountSid"].startswith("AC")
    assert item.meta["segments"] == 1


def test_local_numbers_use_the_region() -> None:
    item = parse_inbound(sms_form(From="3471234567"), region="IT", now=NOW)
    assert item.sender.value == "+393471234567"


def test_whatsapp() -> None:
    item = parse_inbound(whatsapp_form(), now=NOW)
    assert item.channel is Channel.WHATSAPP
    assert item.sender.kind is AddressKind.WHATSAPP
    assert item.sender.value == "+393471234567"
    assert item.sender.name == "Mario Rossi"
    assert item.recipient.kind is AddressKind.WHATSAPP
    assert item.recipient.value == "+14155238886"


def test_whatsapp_reply_to_a_message_is_a_thread_ref() -> None:
    item = parse_inbound(whatsapp_form(OriginalRepliedMessageSid="SM" + "a" * 32), now=NOW)
    assert item.thread_refs == ("SM" + "a" * 32,)


def test_mms_media_become_attachment_refs() -> None:
    base = f"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/{MMS_SID}/Media"
    form = sms_form(
        MessageSid=MMS_SID,
        NumMedia="2",
        Body="",
        MediaUrl0=f"{base}/ME1",
        MediaContentType0="image/jpeg",
        MediaUrl1=f"{base}/ME2",
        MediaContentType1="application/pdf",
    )
    item = parse_inbound(form, now=NOW)
    assert item.external_id == MMS_SID
    assert [(a.filename, a.content_type, a.url, a.content) for a in item.attachments] == [
        ("ME1.jpg", "image/jpeg", f"{base}/ME1", None),
        ("ME2.pdf", "application/pdf", f"{base}/ME2", None),
    ]


def test_media_filename() -> None:
    assert media_filename("https://x.test/a/photo.png", "image/png") == "photo.png"
    assert media_filename("https://x.test/a/ME9", "application/x-unknown-thing") == "ME9.bin"
    assert media_filename("https://x.test/", "audio/ogg; codecs=opus") == "media.ogg"


def test_keywords_set_flags() -> None:
    assert parse_inbound(sms_form(Body=" Stop! "), now=NOW).flags == {Flag.OPT_OUT}
    assert parse_inbound(sms_form(Body="START"), now=NOW).flags == {Flag.OPT_IN}
    assert parse_inbound(sms_form(Body="aiuto"), now=NOW).flags == {Flag.HELP}
    assert parse_inbound(sms_form(Body="stop please"), now=NOW).flags == frozenset()
    assert parse_inbound(sms_form(Body="fermati", OptOutType="STOP"), now=NOW).flags == {Flag.OPT_OUT}


def test_message_sid_falls_back_to_sms_message_sid() -> None:
    form = sms_form()
    del form["MessageSid"]
    assert parse_inbound(form, now=NOW).external_id == SID


@pytest.mark.parametrize(
    ("changes", "missing", "field"),
    [
        ({}, ("MessageSid", "SmsMessageSid"), "MessageSid"),
        ({"MessageSid": "not a sid", "SmsMessageSid": ""}, (), "MessageSid"),
        ({}, ("From",), "From"),
        ({"From": "hello"}, (), "From"),
        ({"To": "whatsapp:nope"}, (), "To"),
        ({"NumMedia": "x"}, (), "NumMedia"),
        ({"NumMedia": "11"}, (), "NumMedia"),
        ({"NumMedia": "1"}, (), "MediaUrl0"),
        ({"NumMedia": "1", "MediaUrl0": "file:///etc/passwd"}, (), "MediaUrl0"),
        ({"NumSegments": "-1"}, (), "NumSegments"),
    ],
)
def test_bad_forms_name_the_field(changes: dict[str, str], missing: tuple[str, ...], field: str) -> None:
    form = sms_form(**changes)
    for name in missing:
        form.pop(name)
    with pytest.raises(WebhookFormError) as info:
        parse_inbound(form, now=NOW)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_short_code_sender_is_kept() -> None:
    assert parse_inbound(sms_form(From="40404"), now=NOW).sender.value == "40404"


def status_form(status: str, **changes: str) -> dict[str, str]:
    """A message status callback form as Twilio posts it."""
    form = {
        "SmsSid": SID,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": "+393471234567",
        "MessageSid": SID,
        "AccountSid": "ACae1b6f6cd4a2b8a4d4b3e1f6c4d2a1b0",
        "From": "+390612345678",
        "ApiVersion": "2010-04-01",
    }
    form.update(changes)
    return form


def test_status_delivered() -> None:
    update = parse_status(status_form("delivered"), now=NOW)
    assert update.channel is Channel.SMS
    assert update.state is DeliveryState.DELIVERED
    assert update.original_ref == SID
    assert update.external_id == f"{SID}:delivered"
    assert update.recipient == "+393471234567"
    assert not update.permanent
    assert update.occurred_at == NOW


def test_status_undelivered_carries_the_error() -> None:
    form = status_form("undelivered", ErrorCode="30003", ErrorMessage="Unreachable destination handset")
    update = parse_status(form, now=NOW)
    assert update.state is DeliveryState.UNDELIVERED
    assert update.code == "30003"
    assert update.detail == "Unreachable destination handset"
    assert update.permanent


def test_whatsapp_read_status() -> None:
    form = status_form("read", To="whatsapp:+393471234567", From="whatsapp:+14155238886")
    update = parse_status(form, now=NOW)
    assert update.channel is Channel.WHATSAPP
    assert update.state is DeliveryState.READ
    assert update.recipient == "+393471234567"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"MessageStatus": "exploded", "SmsStatus": ""}, "MessageStatus"),
        ({"MessageSid": "", "SmsSid": ""}, "MessageSid"),
    ],
)
def test_bad_status_forms(changes: dict[str, str], field: str) -> None:
    with pytest.raises(WebhookFormError) as info:
        parse_status(status_form("sent", **changes), now=NOW)
    assert info.value.field == field


Q, SG, ST, D, R, U, F = (
    DeliveryState.QUEUED,
    DeliveryState.SENDING,
    DeliveryState.SENT,
    DeliveryState.DELIVERED,
    DeliveryState.READ,
    DeliveryState.UNDELIVERED,
    DeliveryState.FAILED,
)


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (None, ST, ST),
        (Q, SG, SG),
        (SG, ST, ST),
        (ST, D, D),
        (D, R, R),
        (D, ST, D),  # late 'sent' after 'delivered'
        (R, D, R),
        (U, ST, U),  # late 'sent' must not undo a failure
        (U, Q, U),
        (U, D, D),  # a handset receipt beats an interim carrier failure
        (U, R, R),
        (D, U, D),
        (ST, U, U),
        (ST, F, F),
        (U, F, F),
        (F, D, F),  # Twilio never sent it: nothing can follow
        (F, U, F),
        (D, F, D),  # a receipt cannot be taken back
        (ST, ST, ST),
    ],
)
def test_advance_never_moves_backwards(
    current: DeliveryState | None, new: DeliveryState, expected: DeliveryState
) -> None:
    assert advance(current, new) is expected


def test_advance_is_order_independent_for_a_normal_run() -> None:
    import itertools

    for order in itertools.permutations([Q, SG, ST, D, R]):
        state = None
        for item in order:
            state = advance(state, item)
        assert state is R

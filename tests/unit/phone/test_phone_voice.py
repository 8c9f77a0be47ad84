from datetime import UTC, datetime

import pytest

from hub.channels.phone.voice import (
    RecordingUpdate,
    WebhookFormError,
    parse_call,
    parse_recording,
    twiml_answer,
)
from hub.core.envelopes import Direction

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
CALL_SID = "CAe1644a7eed5088b159577c5802d8be38"


def voice_form(**changes: str) -> dict[str, str]:
    """The voice webhook Twilio posts when a call reaches the hub's number."""
    form = {
        "Called": "+390612345678",
        "ToState": "",
        "CallerCountry": "IT",
        "Direction": "inbound",
        "CallerState": "",
        "ToZip": "",
        "CallSid": CALL_SID,
        "To": "+390612345678",
        "CallerZip": "",
        "ToCountry": "IT",
        "CallToken": "%7B%22parentCallInfoToken%22%3A%22eyJhbGciOiJFUzI1NiJ9%22%7D",
        "StirVerstat": "TN-Validation-Passed-A",
        "CalledZip": "",
        "ApiVersion": "2010-04-01",
        "CalledCity": "",
        "CallStatus": "ringing",
        "From": "+393471234567",
        "AccountSid": "ACae1b6f6cd4a2b8a4d4b3e1f6c4d2a1b0",
        "CalledCountry": "IT",
        "CallerCity": "",
        "ToCity": "",
        "FromCountry": "IT",
        "Caller": "+393471234567",
        "FromCity": "",
        "CalledState": "",
        "FromZip": "",
        "FromState": "",
    }
    form.update(changes)
    return form


def completed_form(**changes: str) -> dict[str, str]:
    """The status callback Twilio posts when the call ends."""
    form = voice_form(
        CallStatus="completed",
        CallDuration="125",
        Duration="3",
        Timestamp="Wed, 01 May 2024 08:02:05 +0000",
        CallbackSource="call-progress-events",
        SequenceNumber="0",
    )
    form.update(changes)
    return form


def test_ringing_webhook() -> None:
    call = parse_call(voice_form(), now=NOW)
    assert call.external_id == CALL_SID
    assert call.direction is Direction.IN
    assert call.caller.value == "+393471234567"
    assert call.callee.value == "+390612345678"
    assert call.started_at == NOW
    assert call.answered_at is None
    assert call.ended_at is None
    assert call.disposition == "ringing"
    assert not call.missed


def test_completed_callback_derives_answer_time() -> None:
    call = parse_call(completed_form(RecordingUrl="https://api.twilio.com/rec/RE1"), now=NOW)
    assert call.ended_at == datetime(2024, 5, 1, 8, 2, 5, tzinfo=UTC)
    assert call.answered_at == datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
    assert call.started_at == call.answered_at
    assert call.duration_s == 125
    assert call.disposition == "answered"
    assert call.recording_url == "https://api.twilio.com/rec/RE1"


def test_timestamp_with_offset_becomes_utc() -> None:
    call = parse_call(completed_form(Timestamp="Wed, 01 May 2024 10:02:05 +0200", CallDuration="0"))
    assert call.ended_at == datetime(2024, 5, 1, 8, 2, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "disposition", "missed"),
    [
        ("busy", "busy", True),
        ("no-answer", "no-answer", True),
        ("failed", "failed", True),
        ("canceled", "canceled", True),
        ("in-progress", "answered", False),
        ("queued", "ringing", False),
    ],
)
def test_dispositions(status: str, disposition: str, missed: bool) -> None:
    call = parse_call(completed_form(CallStatus=status, CallDuration="0"), now=NOW)
    assert call.disposition == disposition
    assert call.missed is missed


@pytest.mark.parametrize("direction", ["outbound-api", "outbound-dial"])
def test_outbound_directions(direction: str) -> None:
    assert parse_call(voice_form(Direction=direction), now=NOW).direction is Direction.OUT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("anonymous", "anonymous"),
        ("", "anonymous"),
        ("client:alice", "client:alice"),
        ("3471234567", "+393471234567"),
    ],
)
def test_callers_that_are_not_numbers_do_not_fail(value: str, expected: str) -> None:
    assert parse_call(voice_form(From=value), now=NOW).caller.value == expected


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"CallSid": ""}, "CallSid"),
        ({"CallSid": "SM123"}, "CallSid"),
        ({"Direction": "sideways"}, "Direction"),
        ({"CallStatus": ""}, "CallStatus"),
        ({"CallDuration": "1.5"}, "CallDuration"),
        ({"Timestamp": "yesterday"}, "Timestamp"),
    ],
)
def test_bad_forms_name_the_field(changes: dict[str, str], field: str) -> None:
    with pytest.raises(WebhookFormError) as info:
        parse_call(completed_form(**changes), now=NOW)
    assert info.value.field == field


def test_twiml_forward() -> None:
    xml = twiml_answer("+390612345678", None, action="/voice/dial-status", timeout=25)
    assert xml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        '<Dial action="/voice/dial-status" timeout="25">+390612345678</Dial></Response>'
    )


def test_twiml_say_then_forward() -> None:
    xml = twiml_answer("+390612345678", "Attenda in linea")
    assert '<Say language="it-IT">Attenda in linea</Say><Dial timeout="20">' in xml


def test_twiml_say_and_hang_up_escapes_text() -> None:
    xml = twiml_answer(None, 'Siamo chiusi <oggi> & "domani"', language="it-IT")
    assert xml.endswith(
        '<Response><Say language="it-IT">Siamo chiusi &lt;oggi&gt; &amp; "domani"</Say><Hangup /></Response>'
    )


def test_twiml_nothing_to_say_hangs_up() -> None:
    assert twiml_answer(None, None).endswith("<Response><Hangup /></Response>")


def test_recording_callback() -> None:
    form = {
        "AccountSid": "ACae1b6f6cd4a2b8a4d4b3e1f6c4d2a1b0",
        "CallSid": CALL_SID,
        "RecordingSid": "RE557ce644e5ab84fa21cc21112e22c485",
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE557ce644e5ab84fa21cc21112e22c485",
        "RecordingStatus": "completed",
        "RecordingDuration": "118",
        "RecordingChannels": "1",
        "RecordingStartTime": "Wed, 01 May 2024 08:00:07 +0000",
        "RecordingSource": "DialVerb",
    }
    update = parse_recording(form)
    assert update == RecordingUpdate(CALL_SID, form["RecordingSid"], form["RecordingUrl"], "completed", 118)
    with pytest.raises(WebhookFormError) as info:
        parse_recording({**form, "RecordingUrl": ""})
    assert info.value.field == "RecordingUrl"

"""Twilio voice webhooks and call status callbacks parsed into CallLog; TwiML to answer calls."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from twilio.twiml.voice_response import VoiceResponse

from hub.core.envelopes import Address, AddressKind, CallLog, Direction
from hub.core.identity import InvalidAddress, normalise_phone

_SID = re.compile(r"^CA[0-9A-Za-z]{1,62}$")
_DIRECTIONS = {
    "inbound": Direction.IN,
    "outbound-api": Direction.OUT,
    "outbound-dial": Direction.OUT,
}


class WebhookFormError(ValueError):
    """A voice webhook field that is missing or invalid; `field` names it for the HTTP 400."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


# Twilio CallStatus -> CallLog.disposition; "ringing" is a call still in progress.
DISPOSITIONS = {
    "queued": "ringing",
    "initiated": "ringing",
    "ringing": "ringing",
    "in-progress": "answered",
    "completed": "answered",
    "busy": "busy",
    "no-answer": "no-answer",
    "failed": "failed",
    "canceled": "canceled",
}
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# What carriers put in From when the caller withholds their number.
_ANONYMOUS = frozenset({"", "anonymous", "restricted", "unknown", "private", "unavailable"})


def caller_address(value: str, region: str, name: str | None = None) -> Address:
    """Normalise a call party; withheld numbers become "anonymous", `client:`/`sip:` stay as given."""
    # Never raises: a 400 on a voice webhook makes Twilio hang up on a real caller.
    raw = value.strip()
    if raw.lower() in _ANONYMOUS:
        return Address(AddressKind.PHONE, "anonymous", name)
    try:
        return Address(AddressKind.PHONE, normalise_phone(raw, region), name)
    except InvalidAddress:
        return Address(AddressKind.PHONE, raw, name)


def _timestamp(form: Mapping[str, str]) -> datetime | None:
    raw = (form.get("Timestamp") or "").strip()
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw)  # Twilio sends RFC 2822 dates
    except (TypeError, ValueError) as exc:
        raise WebhookFormError("Timestamp", f"not an RFC 2822 date: {raw!r}") from exc
    if parsed.tzinfo is None:
        raise WebhookFormError("Timestamp", f"no timezone in {raw!r}")
    return parsed.astimezone(UTC)


def _duration(form: Mapping[str, str]) -> int:
    raw = (form.get("CallDuration") or "0").strip()
    if not raw.isdigit():
        raise WebhookFormError("CallDuration", f"not a number of seconds: {raw!r}")
    return int(raw)


def _choice(form: Mapping[str, str], field: str, allowed: Mapping[str, object]) -> str:
    value = (form.get(field) or "").strip().lower()
    if value not in allowed:
        raise WebhookFormError(field, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _times(status: str, at: datetime, duration: int) -> tuple[datetime, datetime | None, datetime | None]:
    """(started, answered, ended) from the callback time; Twilio only tells when it called back."""
    if status == "in-progress":
        return at, at, None
    if status not in FINAL_STATUSES:
        return at, None, None
    if status == "completed":
        answered = at - timedelta(seconds=duration)
        return answered, answered, at
    return at, None, at


def parse_call(form: Mapping[str, str], *, region: str = "IT", now: datetime | None = None) -> CallLog:
    """Parse a Twilio voice webhook or call status callback; raise WebhookFormError on bad fields."""
    sid = (form.get("CallSid") or "").strip()
    if not _SID.match(sid):
        raise WebhookFormError("CallSid", f"missing or not a call SID: {sid!r}")
    direction = _DIRECTIONS[_choice(form, "Direction", _DIRECTIONS)]
    status = _choice(form, "CallStatus", DISPOSITIONS)
    duration = _duration(form)
    started, answered, ended = _times(status, _timestamp(form) or now or datetime.now(UTC), duration)
    name = (form.get("CallerName") or "").strip() or None
    return CallLog(
        external_id=sid,
        direction=direction,
        caller=caller_address(form.get("From") or "", region, name),
        callee=caller_address(form.get("To") or "", region),
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        duration_s=duration,
        disposition=DISPOSITIONS[status],
        recording_url=(form.get("RecordingUrl") or "").strip() or None,
    )


@dataclass(frozen=True, slots=True)
class RecordingUpdate:
    """A recording status callback: which call it belongs to and where the audio is."""

    call_sid: str
    recording_sid: str
    url: str
    status: str
    duration_s: int


def parse_recording(form: Mapping[str, str]) -> RecordingUpdate:
    """Parse a recordingStatusCallback form, which carries no Direction or CallStatus."""
    sid = (form.get("CallSid") or "").strip()
    if not _SID.match(sid):
        raise WebhookFormError("CallSid", f"missing or not a call SID: {sid!r}")
    url = (form.get("RecordingUrl") or "").strip()
    if not url.startswith(("https://", "http://")):
        raise WebhookFormError("RecordingUrl", f"missing or not an http(s) URL: {url!r}")
    duration = (form.get("RecordingDuration") or "0").strip()
    if not duration.isdigit():
        raise WebhookFormError("RecordingDuration", f"not a number of seconds: {duration!r}")
    return RecordingUpdate(
        call_sid=sid,
        recording_sid=(form.get("RecordingSid") or "").strip(),
        url=url,
        status=(form.get("RecordingStatus") or "completed").strip().lower(),
        duration_s=int(duration),
    )


def twiml_answer(
    forward_to: str | None,
    say: str | None,
    *,
    action: str | None = None,
    timeout: int = 20,
    language: str = "it-IT",
) -> str:
    """TwiML that says `say` (if any) then dials `forward_to`, or says it and hangs up."""
    response = VoiceResponse()
    if say:
        response.say(say, language=language)
    if forward_to:
        # Dial's action URL gets DialCallStatus, so a missed forward can reach voicemail there.
        response.dial(forward_to, action=action, timeout=timeout)
    else:
        response.hangup()
    return str(response)

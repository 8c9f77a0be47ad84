"""Twilio messaging webhooks (SMS, MMS, WhatsApp) parsed into Inbound and DeliveryUpdate."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from hub.channels.sms.keywords import Keyword, classify
from hub.core.delivery import advance
from hub.core.envelopes import (
    Address,
    AddressKind,
    AttachmentRef,
    Channel,
    DeliveryState,
    DeliveryUpdate,
    Flag,
    Inbound,
)
from hub.core.identity import InvalidAddress, normalise_phone

__all__ = ["WebhookFormError", "advance", "media_filename", "parse_inbound", "parse_status"]

WHATSAPP_PREFIX = "whatsapp:"
MAX_MEDIA = 10  # Twilio delivers at most 10 media items per message

_SID = re.compile(r"^[A-Za-z]{2}[0-9A-Za-z]{1,62}$")
_SHORT_CODE = re.compile(r"^\d{3,6}$")
_FLAGS = {Keyword.OPT_OUT: Flag.OPT_OUT, Keyword.OPT_IN: Flag.OPT_IN, Keyword.HELP: Flag.HELP}

# Twilio's media URLs end in the media SID with no extension, so the name gets one from the type.
# A fixed table first: mimetypes' answer depends on the host's /etc/mime.types.
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/amr": ".amr",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "application/pdf": ".pdf",
    "text/vcard": ".vcf",
    "text/x-vcard": ".vcf",
    "text/plain": ".txt",
}

_STATUSES = {
    "accepted": DeliveryState.QUEUED,
    "scheduled": DeliveryState.QUEUED,
    "queued": DeliveryState.QUEUED,
    "sending": DeliveryState.SENDING,
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}
_FAILURES = frozenset({DeliveryState.UNDELIVERED, DeliveryState.FAILED, DeliveryState.BOUNCED})


class WebhookFormError(ValueError):
    """A webhook form field that is missing or invalid; `field` names it for the HTTP 400."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _required(form: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = (form.get(name) or "").strip()
        if value:
            return value
    raise WebhookFormError(names[0], "missing")


def _sid(form: Mapping[str, str], *names: str) -> str:
    value = _required(form, *names)
    if not _SID.match(value):
        raise WebhookFormError(names[0], f"not a Twilio SID: {value!r}")
    return value


def _address(form: Mapping[str, str], field: str, region: str, name: str | None = None) -> Address:
    """Normalise a From/To value; a `whatsapp:` prefix makes a WhatsApp address."""
    value = _required(form, field)
    kind = AddressKind.PHONE
    if value.lower().startswith(WHATSAPP_PREFIX):
        kind, value = AddressKind.WHATSAPP, value[len(WHATSAPP_PREFIX) :].strip()
    if kind is AddressKind.PHONE and _SHORT_CODE.match(value):
        return Address(kind, value, name)  # a short code is not E.164 but is a real endpoint
    try:
        return Address(kind, normalise_phone(value, region), name)
    except InvalidAddress as exc:
        raise WebhookFormError(field, str(exc)) from exc


def _count(form: Mapping[str, str], field: str, maximum: int) -> int:
    raw = (form.get(field) or "0").strip()
    if not raw.isdigit() or int(raw) > maximum:
        raise WebhookFormError(field, f"expected a number from 0 to {maximum}, got {raw!r}")
    return int(raw)


def media_filename(url: str, content_type: str) -> str:
    """A file name from the last URL segment plus an extension matching the content type."""
    stem = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "media"
    base_type = content_type.split(";", 1)[0].strip().lower()
    ext = _EXTENSIONS.get(base_type) or mimetypes.guess_extension(base_type) or ".bin"
    return stem if stem.lower().endswith(ext) else stem + ext


def _attachments(form: Mapping[str, str]) -> tuple[AttachmentRef, ...]:
    refs = []
    for i in range(_count(form, "NumMedia", MAX_MEDIA)):
        url = _required(form, f"MediaUrl{i}")
        if urlsplit(url).scheme not in {"http", "https"}:
            raise WebhookFormError(f"MediaUrl{i}", f"not an http(s) URL: {url!r}")
        ctype = (form.get(f"MediaContentType{i}") or "application/octet-stream").strip()
        # size 0: unknown until the fetcher downloads it; content stays None for the same reason
        refs.append(AttachmentRef(media_filename(url, ctype), ctype, 0, url=url))
    return tuple(refs)


def _channel(sender: Address) -> Channel:
    return Channel.WHATSAPP if sender.kind is AddressKind.WHATSAPP else Channel.SMS


def parse_inbound(form: Mapping[str, str], *, region: str = "IT", now: datetime | None = None) -> Inbound:
    """Parse Twilio's incoming-message webhook form; raise WebhookFormError on a bad field."""
    external_id = _sid(form, "MessageSid", "SmsMessageSid")
    profile = (form.get("ProfileName") or "").strip() or None
    sender = _address(form, "From", region, profile)
    recipient = _address(form, "To", region)
    body = (form.get("Body") or "").replace("\x00", "")  # NUL breaks PostgreSQL text columns
    keyword = classify(body, form.get("OptOutType"))
    meta: dict[str, object] = {"form": dict(form)}
    if form.get("NumSegments"):
        meta["segments"] = _count(form, "NumSegments", 1600)
    replied_to = (form.get("OriginalRepliedMessageSid") or "").strip()
    return Inbound(
        channel=_channel(sender),
        external_id=external_id,
        sender=sender,
        recipient=recipient,
        received_at=now or datetime.now(UTC),
        body_text=body,
        thread_refs=(replied_to,) if replied_to else (),
        attachments=_attachments(form),
        flags=frozenset({_FLAGS[keyword]}) if keyword else frozenset(),
        meta=meta,
    )


def parse_status(form: Mapping[str, str], *, now: datetime | None = None) -> DeliveryUpdate:
    """Parse a Twilio message status callback; `external_id` is "<MessageSid>:<status>"."""
    sid = _sid(form, "MessageSid", "SmsSid")
    status = _required(form, "MessageStatus", "SmsStatus").lower()
    state = _STATUSES.get(status)
    if state is None:
        raise WebhookFormError("MessageStatus", f"unknown status {status!r}")
    to = (form.get("To") or "").strip()
    channel = Channel.WHATSAPP if to.lower().startswith(WHATSAPP_PREFIX) else Channel.SMS
    code = (form.get("ErrorCode") or "").strip() or None
    return DeliveryUpdate(
        channel=channel,
        # One callback per state, so the state makes a replayed callback a duplicate.
        external_id=f"{sid}:{status}",
        state=state,
        occurred_at=now or datetime.now(UTC),
        original_ref=sid,
        recipient=to.removeprefix(WHATSAPP_PREFIX) or None,
        detail=(form.get("ErrorMessage") or "").strip(),
        code=code,
        permanent=state in _FAILURES,
    )

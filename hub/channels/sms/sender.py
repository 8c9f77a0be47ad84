"""TwilioSender: SMS and WhatsApp through Twilio's Messages API, after the hub's own checks.

Checks that need no provider (body length, suppression, the WhatsApp window) run first, so a
refused message never costs an HTTP request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy import func
from sqlmodel import col, select
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from hub.channels.sms import consent
from hub.channels.sms.segments import SmsBodyError, check_body
from hub.channels.sms.throttle import Throttle
from hub.channels.sms.whatsapp import WhatsAppWindowError, check_whatsapp_send
from hub.core.delivery import MARKETING_ONLY, TEST_MESSAGE_ID
from hub.core.envelopes import Channel, Outbound, SendResult
from hub.settings import Settings
from hub.store.engine import SessionFactory
from hub.store.models import Message
from hub.store.types import utcnow

log = logging.getLogger(__name__)

STATUS_PATH = "/webhooks/twilio/status"
OPTED_OUT = "21610"  # Twilio: "Attempt to send to unsubscribed recipient"
WHATSAPP = "whatsapp:"


@dataclass(frozen=True, slots=True)
class _Facts:
    customer_id: int | None
    suppressed: str | None
    last_inbound_at: datetime | None


def permanent(code: str, detail: str) -> SendResult:
    return SendResult(ok=False, permanent=True, code=code, detail=detail)


def failure(exc: TwilioException) -> SendResult:
    """Twilio's error as a SendResult: 429 and 5xx are retried, any other answer is final."""
    status = int(getattr(exc, "status", 0) or 0)
    code = str(getattr(exc, "code", "") or "") or None
    text = str(getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "") or exc)
    detail = f"Twilio error {code or status}: {text.removeprefix('Unable to create record: ')}"
    if status == 429:
        return SendResult(ok=False, code=code, detail=detail, retry_after=2.0)
    if status >= 500 or status == 0:
        return SendResult(ok=False, code=code, detail=detail)
    return SendResult(ok=False, permanent=True, code=code, detail=detail)


def twilio_address(channel: Channel, value: str) -> str:
    """A hub address as Twilio wants it: WhatsApp numbers carry the `whatsapp:` prefix."""
    bare = value.removeprefix(WHATSAPP)
    return WHATSAPP + bare if channel is Channel.WHATSAPP else bare


def blocked_by(reason: str | None, item: Outbound) -> bool:
    """Whether a suppression stops this message: an unsubscribe stops marketing, not an agent's reply."""
    return reason is not None and (reason not in MARKETING_ONLY or item.meta.get("purpose") == "marketing")


def is_template(item: Outbound) -> bool:
    """A pre-approved WhatsApp/Content template (Twilio Content SID), allowed outside the window."""
    return bool(item.meta.get("content_sid"))


class TwilioSender:
    """The Sender of channels `sms` and `whatsapp`; one instance per runtime."""

    def __init__(self, settings: Settings, factory: SessionFactory, throttle: Throttle) -> None:
        self.settings, self.factory, self.throttle = settings, factory, throttle
        self._client: Client | None = None

    def client(self) -> Client:
        """Twilio's client, made at first use because its aiohttp session needs a running loop."""
        if self._client is None:
            client = Client(self.settings.twilio_account_sid, self.settings.twilio_auth_token,
                            http_client=AsyncTwilioHttpClient(timeout=30))
            if self.settings.twilio_base_url:
                client.api.base_url = self.settings.twilio_base_url.rstrip("/")
            self._client = client
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._client is not None:
            await self._client.http_client.close()
            self._client = None

    async def send(self, item: Outbound) -> SendResult:
        """Check, throttle, then create the message at Twilio."""
        refused = await self.refusal(item)
        if refused is not None:
            return refused
        sender = self._from(item)
        if sender is None:
            return permanent("no_sender", "no number to send from: set HUB_TWILIO_FROM")
        if (wait := await self.throttle.acquire(sender)) > 0:
            return SendResult(ok=False, detail=f"sender {sender} throttled", retry_after=wait)
        try:
            created = await self.client().messages.create_async(**self._params(item, sender))
        except TwilioException as exc:
            return await self._failed(item, failure(exc))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.error("Twilio unreachable for message %s: %s", item.message_id, type(exc).__name__)
            return SendResult(ok=False, detail=f"Twilio unreachable: {type(exc).__name__}")
        return SendResult(ok=True, provider_id=created.sid)

    async def refusal(self, item: Outbound) -> SendResult | None:
        """Why the hub itself refuses this message (body, opt-out, WhatsApp window), or None."""
        segments = None
        if not is_template(item):
            try:
                segments = check_body(item.body_text)
            except SmsBodyError as exc:
                return permanent("body", str(exc))
        facts = await self._facts(item, segments)
        if blocked_by(facts.suppressed, item):
            return permanent("suppressed", f"{item.recipient.value} is suppressed on {item.channel.value} "
                                           f"({facts.suppressed}); nothing was sent")
        if item.channel is Channel.WHATSAPP:
            try:
                check_whatsapp_send(facts.last_inbound_at, utcnow(), is_template(item))
            except WhatsAppWindowError as exc:
                return permanent("whatsapp_window", str(exc))
        return None

    async def _facts(self, item: Outbound, segments: int | None) -> _Facts:
        async with self.factory() as session, session.begin():
            message = await session.get(Message, item.message_id)
            if message is None and item.message_id != TEST_MESSAGE_ID:
                raise LookupError(f"message {item.message_id} vanished before sending")
            if message is not None and segments is not None and message.headers.get("segments") != segments:
                message.headers = {**message.headers, "segments": segments}
            found = await consent.suppression_of(session, item.channel.value, item.recipient.value)
            last_in = None
            if item.channel is Channel.WHATSAPP and message is not None:
                last_in = (await session.execute(
                    select(func.max(col(Message.created_at))).where(
                        col(Message.customer_id) == message.customer_id, col(Message.direction) == "in",
                        col(Message.channel) == Channel.WHATSAPP.value,
                    )
                )).scalar_one_or_none()
            return _Facts(message.customer_id if message else None, found.reason if found else None, last_in)

    def _from(self, item: Outbound) -> str | None:
        value = item.sender.value.removeprefix(WHATSAPP)
        if not value.lstrip("+").isdigit():
            value = (self.settings.twilio_from or "").removeprefix(WHATSAPP)
        return twilio_address(item.channel, value) if value else None

    def _params(self, item: Outbound, sender: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "to": twilio_address(item.channel, item.recipient.value), "from_": sender,
            "status_callback": self.settings.public_url.rstrip("/") + STATUS_PATH,
        }
        if is_template(item):
            params["content_sid"] = str(item.meta["content_sid"])
            if item.meta.get("content_variables"):
                params["content_variables"] = str(item.meta["content_variables"])
        else:
            params["body"] = item.body_text
        return params

    async def _failed(self, item: Outbound, result: SendResult) -> SendResult:
        if result.permanent:
            log.info("Twilio refused message %s: %s", item.message_id, result.detail)
        else:
            log.error("Twilio failed message %s: %s", item.message_id, result.detail)
        if result.code == OPTED_OUT:
            async with self.factory() as session, session.begin():
                message = await session.get(Message, item.message_id)
                if message is not None:
                    await consent.opt_out(
                        session, customer_id=message.customer_id, channel=item.channel.value,
                        address=item.recipient.value, source="twilio_error_21610", detail=result.detail,
                    )
        return result

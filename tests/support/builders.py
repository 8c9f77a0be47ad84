"""Small builders for envelopes used across tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.core.envelopes import Address, AddressKind, CallLog, Channel, Direction, Inbound

HOTEL_MAIL = Address(AddressKind.EMAIL, "reception@hotel.test")
HOTEL_PHONE = Address(AddressKind.PHONE, "+390612345678")
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def email(external_id: str, sender: str = "giulia@example.com", *, subject: str | None = "Hello",
          body: str = "Hi there", at: datetime = T0, refs: tuple[str, ...] = (), raw: bytes | None = None) -> Inbound:
    return Inbound(channel=Channel.EMAIL, external_id=external_id, sender=Address(AddressKind.EMAIL, sender),
                   recipient=HOTEL_MAIL, received_at=at, body_text=body, subject=subject, thread_refs=refs,
                   raw=raw if raw is not None else f"Subject: {subject}\r\n\r\n{body}".encode())


def sms(external_id: str, sender: str = "+393471112233", *, body: str = "Ciao", at: datetime = T0) -> Inbound:
    return Inbound(channel=Channel.SMS, external_id=external_id, sender=Address(AddressKind.PHONE, sender),
                   recipient=HOTEL_PHONE, received_at=at, body_text=body)


def call(external_id: str, caller: str = "+393471112233", *, at: datetime = T0, disposition: str = "answered",
         duration: int = 60) -> CallLog:
    return CallLog(external_id=external_id, direction=Direction.IN, caller=Address(AddressKind.PHONE, caller),
                   callee=HOTEL_PHONE, started_at=at, duration_s=duration, disposition=disposition,
                   ended_at=at + timedelta(seconds=duration))

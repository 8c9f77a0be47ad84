"""SMS encoding and segment maths: GSM-7 (with its extension table) or UCS-2."""

from __future__ import annotations

from enum import StrEnum

MAX_BODY_CHARS = 1600  # Twilio refuses longer bodies (error 21617)

# GSM 03.38 basic table, without ESC (0x1B) which only introduces the extension table.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each character is sent as ESC + char, so it costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_SINGLE = {"gsm7": 160, "ucs2": 70}
_MULTI = {"gsm7": 153, "ucs2": 67}  # 7 septets / 3 UCS-2 units go to the UDH of each part


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


class SmsBodyError(ValueError):
    """A body Twilio would refuse: empty or longer than 1600 characters."""


def encoding(body: str) -> Encoding:
    """GSM-7 when every character is in the basic or extension table, else UCS-2."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        return Encoding.GSM7
    return Encoding.UCS2


def _units(ch: str, enc: Encoding) -> int:
    if enc is Encoding.GSM7:
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1  # astral characters are a UTF-16 surrogate pair


def segment_count(body: str) -> int:
    """Number of SMS parts the body needs (0 for an empty body)."""
    enc = encoding(body)
    units = [_units(ch, enc) for ch in body]
    if sum(units) <= _SINGLE[enc]:
        return 1 if body else 0
    # Packed greedily because handsets never split an escape sequence or a surrogate pair
    # across two parts, so a 2-unit character at a boundary starts the next part.
    limit, parts, used = _MULTI[enc], 1, 0
    for size in units:
        if used + size > limit:
            parts, used = parts + 1, 0
        used += size
    return parts


def check_body(body: str) -> int:
    """Return the segment count, or raise SmsBodyError for an empty or too long body."""
    if not body.strip():
        raise SmsBodyError("SMS body is empty")
    if len(body) > MAX_BODY_CHARS:
        raise SmsBodyError(f"SMS body is {len(body)} characters long; the limit is {MAX_BODY_CHARS}")
    return segment_count(body)

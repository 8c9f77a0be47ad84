"""HMAC-signed tokens for unsubscribe, open and click links (keyed by HUB_SECRET_KEY).

Link tokens are base64 (short URLs); address tokens, put in the local part of a mailto address,
are lower-case hex, because mail servers may change the case of an address (Postfix lower-cases
the one it writes into Delivered-To).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

_SIG_BYTES = 12  # 96 bits: unguessable, and keeps links short
UNSUBSCRIBE_LOCAL = "unsubscribe"  # local part of the List-Unsubscribe mailto: unsubscribe+<token>@mail_domain


class BadToken(ValueError):
    """A token that was not made by this hub (or was altered)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    # The key schedule is done once per secret; each token copies it (a campaign signs 4-5 per message).
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def _mac(secret: str, purpose: str, payload: str) -> bytes:
    # The purpose is part of the MAC so an open-pixel token can never unsubscribe anybody.
    mac = _keyed(secret).copy()
    mac.update(f"{purpose}\x00{payload}".encode())
    return mac.digest()[:_SIG_BYTES]


def sign(secret: str, purpose: str, recipient_id: int, extra: str = "") -> str:
    """A URL-safe token naming one campaign recipient for one purpose (`unsub`, `open`, `click`)."""
    payload = str(recipient_id)
    return f"{payload}.{_b64(_mac(secret, purpose, payload + extra))}"


def verify(secret: str, purpose: str, token: str, extra: str = "") -> int:
    """The recipient id inside a token; BadToken when the signature does not match."""
    payload, _, sig = token.partition(".")
    if not payload.isdigit() or not sig:
        raise BadToken("malformed token")
    try:
        given = _unb64(sig)
    except ValueError:
        raise BadToken("malformed token") from None
    if not hmac.compare_digest(given, _mac(secret, purpose, payload + extra)):
        raise BadToken("bad signature")
    return int(payload)


def sign_address(secret: str, purpose: str, recipient_id: int) -> str:
    """A case-insensitive token for the `local+<token>@domain` part of a mailto address."""
    payload = str(recipient_id)
    return f"{payload}.{_mac(secret, purpose, payload).hex()}"


def verify_address(secret: str, purpose: str, token: str) -> int:
    """The recipient id inside an address token, whatever case it arrives in; BadToken otherwise."""
    payload, _, sig = token.strip().lower().partition(".")
    if not payload.isdigit() or len(sig) != 2 * _SIG_BYTES:
        raise BadToken("malformed token")
    try:
        given = bytes.fromhex(sig)
    except ValueError:
        raise BadToken("malformed token") from None
    if not hmac.compare_digest(given, _mac(secret, purpose, payload)):
        raise BadToken("bad signature")
    return int(payload)

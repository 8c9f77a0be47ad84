"""Sender throughput: which kind of number sends, and token-bucket maths shared with Redis."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class SenderKind(StrEnum):
    LONG_CODE = "long_code"
    TOLL_FREE = "toll_free"
    SHORT_CODE = "short_code"
    WHATSAPP = "whatsapp"


# Messages per second Twilio accepts by default per sender; accounts can buy more, hence overrides.
DEFAULT_RATES: Mapping[SenderKind, float] = {
    SenderKind.LONG_CODE: 1.0,
    SenderKind.TOLL_FREE: 3.0,
    SenderKind.SHORT_CODE: 100.0,
    SenderKind.WHATSAPP: 80.0,
}

TOLL_FREE_PREFIXES = frozenset({"800", "833", "844", "855", "866", "877", "888"})
_SHORT_CODE = re.compile(r"^\d{5,6}$")
_NANP_TOLL_FREE = re.compile(r"^\+1(\d{3})\d{7}$")
_SEPARATORS = re.compile(r"[\s().-]")


def classify_sender(number: str) -> SenderKind:
    """Short code (5–6 bare digits), North American toll-free, WhatsApp, else long code."""
    cleaned = _SEPARATORS.sub("", number.strip())
    if cleaned.lower().startswith("whatsapp:"):
        return SenderKind.WHATSAPP
    if _SHORT_CODE.match(cleaned):
        return SenderKind.SHORT_CODE
    match = _NANP_TOLL_FREE.match(cleaned)
    if match and match.group(1) in TOLL_FREE_PREFIXES:
        return SenderKind.TOLL_FREE
    return SenderKind.LONG_CODE


def rate_for(kind: SenderKind, overrides: Mapping[SenderKind, float] | None = None) -> float:
    """Messages per second for a sender kind, an override winning over Twilio's default."""
    if overrides and kind in overrides:
        return overrides[kind]
    return DEFAULT_RATES[kind]


@dataclass(frozen=True, slots=True)
class BucketState:
    """Tokens left at `updated_at` (seconds on the caller's clock)."""

    tokens: float
    updated_at: float


def take(state: BucketState | None, now: float, rate: float, burst: float) -> tuple[BucketState, float]:
    """Take one token: (new state, 0.0), or (refilled state, seconds to wait) when none is left."""
    # A refused take reserves nothing, so an abandoned caller cannot starve the others: the
    # caller sleeps `wait` seconds and calls again.
    if rate <= 0 or burst < 1:
        raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate} burst={burst}")
    if state is None:
        state = BucketState(tokens=burst, updated_at=now)
    # A clock that steps backwards (NTP) must neither add nor remove tokens.
    elapsed = max(0.0, now - state.updated_at)
    tokens = min(burst, state.tokens + elapsed * rate)
    updated_at = max(now, state.updated_at)
    if tokens >= 1:
        return BucketState(tokens - 1, updated_at), 0.0
    return BucketState(tokens, updated_at), (1 - tokens) / rate


# The same step as `take`, atomic in Redis. KEYS[1] is a hash {tokens, ts}; ARGV is rate, burst
# and `now` in seconds, or "" to use the Redis clock so every worker shares one clock. Returns the
# wait as a string because Redis truncates Lua numbers to integers. The key expires once the
# bucket would be full again, which is the same as it never having existed.
TAKE_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""

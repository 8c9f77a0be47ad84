"""Per-sender token buckets: in Redis when workers share one, in process memory otherwise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol

from redis.asyncio import Redis

from hub.channels.sms.ratelimit import TAKE_LUA, BucketState, SenderKind, classify_sender, rate_for, take

KEY_PREFIX = "hub:sms:bucket:"


class Bucket(Protocol):
    """Take one token for `key`; returns 0.0, or the seconds to wait before asking again."""

    async def take(self, key: str, rate: float, burst: float) -> float: ...


class LocalBucket:
    """Buckets in this process only: right for the embedded default with one `hub serve`."""

    def __init__(self) -> None:
        self._states: dict[str, BucketState] = {}

    async def take(self, key: str, rate: float, burst: float) -> float:
        state, wait = take(self._states.get(key), time.monotonic(), rate, burst)
        self._states[key] = state
        return wait


class RedisBucket:
    """Buckets in Redis, one atomic Lua step per take, on the Redis clock so workers agree."""

    def __init__(self, redis: Redis, prefix: str = KEY_PREFIX) -> None:
        self._script = redis.register_script(TAKE_LUA)
        self._prefix = prefix

    async def take(self, key: str, rate: float, burst: float) -> float:
        answer = await self._script(keys=[self._prefix + key], args=[rate, burst, ""])
        return float(answer.decode() if isinstance(answer, bytes) else answer)


class Throttle:
    """Waits for a sender's token at the rate its kind of number allows."""

    def __init__(self, bucket: Bucket, overrides: Mapping[SenderKind, float] | None = None,
                 burst: float = 1.0, max_wait: float = 30.0) -> None:
        self.bucket, self.overrides = bucket, dict(overrides or {})
        self.burst, self.max_wait = burst, max_wait

    def rate(self, sender: str) -> float:
        return rate_for(classify_sender(sender), self.overrides)

    async def acquire(self, sender: str) -> float:
        """Sleep until `sender` may send; returns the seconds still to wait if max_wait ran out (else 0)."""
        rate, waited = self.rate(sender), 0.0
        while (wait := await self.bucket.take(sender, rate, self.burst)) > 0:
            if waited + wait > self.max_wait:
                return wait  # give the worker back; the job is retried after `wait`
            await asyncio.sleep(wait)
            waited += wait
        return 0.0


def parse_overrides(raw: Mapping[str, float]) -> dict[SenderKind, float]:
    """HUB_SMS_RATES as {SenderKind: rate}; an unknown kind or a rate <= 0 is a ValueError naming it."""
    kinds = {k.value for k in SenderKind}
    out: dict[SenderKind, float] = {}
    for name, rate in raw.items():
        if name not in kinds or rate <= 0:
            raise ValueError(f"HUB_SMS_RATES: {name}={rate} (kinds: {', '.join(sorted(kinds))}; rate > 0)")
        out[SenderKind(name)] = float(rate)
    return out

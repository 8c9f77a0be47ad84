"""Per-channel send rate shared by every worker: a token bucket in Redis, updated by one Lua script."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

# KEYS[1] bucket; ARGV: rate (tokens/s), burst, now (s), wanted. Returns 0 when granted, else the
# wait in ms. Time comes from the caller so the script is deterministic (replication-safe).
TAKE_LUA = """
local rate, burst, now, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
local wait = 0
if tokens >= want then tokens = tokens - want else wait = math.ceil((want - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', math.max(now, at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


class Bucket(Protocol):
    """Takes tokens for a key; returns 0 when granted, else seconds to wait."""

    async def take(self, key: str, rate: float, burst: float) -> float: ...


class RedisBucket:
    """The shared bucket; every worker on every machine draws from the same key."""

    def __init__(self, redis: Any, prefix: str = "hub:campaign:throttle:") -> None:
        self.redis, self.prefix = redis, prefix
        self._script = redis.register_script(TAKE_LUA)

    async def take(self, key: str, rate: float, burst: float) -> float:
        waited_ms = await self._script(keys=[self.prefix + key], args=[rate, burst, time.time(), 1])
        return int(waited_ms) / 1000.0


class LocalBucket:
    """The same bucket in process memory, for the embedded (no Redis) mode."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, rate: float, burst: float) -> float:
        now = time.monotonic()
        tokens, at = self._state.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1 - tokens) / rate


class Throttle:
    """Waits for a token of a channel's rate; no rate configured means no waiting at all."""

    def __init__(self, bucket: Bucket, rates: dict[str, float], burst: float = 1.0) -> None:
        self.bucket, self.rates, self.burst = bucket, rates, burst

    async def acquire(self, channel: str, rate: float | None = None) -> None:
        """Sleep until this channel may send one more message."""
        per_second = rate if rate is not None else self.rates.get(channel)
        if not per_second:
            return
        while True:
            wait = await self.bucket.take(channel, per_second, max(self.burst, 1.0))
            if wait <= 0:
                return
            await asyncio.sleep(wait)

"""Collision notices: who is viewing or typing in a conversation right now.

Presence is ephemeral by design (nothing to replay after a reconnect), so it lives in memory,
or in Redis when HUB_REDIS_URL is set so that every web process hears every agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

STATES = ("viewing", "typing", "left")
TTL_SECONDS = 30.0
CHANNEL = "hub:presence"


@dataclass(frozen=True, slots=True)
class Notice:
    """One agent's state in one conversation; `at` is a Unix time used to expire it."""

    conversation_id: int
    team_id: int | None
    assignee_id: int | None
    agent_id: int
    agent_name: str
    state: str
    at: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notice:
        return cls(**{k: data[k] for k in cls.__slots__})

    def fresh(self, now: float) -> bool:
        return self.state != "left" and now - self.at < TTL_SECONDS


Listener = asyncio.Queue[Any]


class Presence:
    """In-process presence: state in a dict, notices handed to every local listener queue."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._state: dict[int, dict[int, Notice]] = {}

    async def start(self) -> None:
        """Nothing to connect to in memory."""

    async def close(self) -> None:
        self._listeners.clear()

    def listen(self, queue: Listener) -> None:
        self._listeners.add(queue)

    def unlisten(self, queue: Listener) -> None:
        self._listeners.discard(queue)

    async def announce(self, notice: Notice) -> None:
        """Record the agent's state and tell every listener."""
        self._remember(notice)
        self._fan_out(notice)

    async def who(self, conversation_id: int) -> list[Notice]:
        """Agents currently viewing or typing in the conversation, oldest first."""
        now = time.time()
        return sorted((n for n in self._state.get(conversation_id, {}).values() if n.fresh(now)), key=lambda n: n.at)

    def _remember(self, notice: Notice) -> None:
        room = self._state.setdefault(notice.conversation_id, {})
        room[notice.agent_id] = notice
        now = time.time()
        for agent_id in [a for a, n in room.items() if not n.fresh(now)]:
            del room[agent_id]

    def _fan_out(self, notice: Notice) -> None:
        for queue in list(self._listeners):
            with contextlib.suppress(asyncio.QueueFull):  # a stalled stream misses a notice, nothing durable
                queue.put_nowait(notice)


class RedisPresence(Presence):
    """Presence shared by every web process: a hash per conversation and one pub/sub channel."""

    def __init__(self, url: str, prefix: str = "hub:presence") -> None:
        super().__init__()
        self._redis = aioredis.Redis.from_url(url)
        self._prefix = prefix
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._relay())
        await asyncio.wait_for(self._ready.wait(), 5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()
        await super().close()

    async def announce(self, notice: Notice) -> None:
        key = f"{self._prefix}:{notice.conversation_id}"
        payload = json.dumps(notice.as_json())
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, str(notice.agent_id), payload)
            pipe.expire(key, int(TTL_SECONDS) * 2)
            pipe.publish(self._prefix, payload)
            await pipe.execute()

    async def who(self, conversation_id: int) -> list[Notice]:
        raw = await self._redis.hgetall(f"{self._prefix}:{conversation_id}")
        now = time.time()
        notices = [Notice.from_json(json.loads(v)) for v in raw.values()]
        return sorted((n for n in notices if n.fresh(now)), key=lambda n: n.at)

    async def _relay(self) -> None:
        """Hand every published notice (ours included) to the local listeners."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._prefix)
        self._ready.set()
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    self._fan_out(Notice.from_json(json.loads(message["data"])))
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring a malformed presence notice on %s", self._prefix)
        finally:
            await pubsub.aclose()


def make_presence(redis_url: str | None) -> Presence:
    """Redis-backed presence when Redis is configured, else in-process."""
    return RedisPresence(redis_url) if redis_url else Presence()

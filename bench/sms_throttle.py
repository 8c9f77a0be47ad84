"""Does the Redis token bucket hold its rate when several worker processes share one sender?

4 processes (default) each take tokens for the same long-code sender from one Redis bucket as
fast as it lets them, for `--seconds` (30 by default); the script prints measured / configured
rate. Target: within ±5%. Run: `python bench/sms_throttle.py [--rate 10] [--seconds 30]`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import uuid
from multiprocessing.queues import Queue

from redis.asyncio import Redis

from hub.channels.sms.ratelimit import SenderKind
from hub.channels.sms.throttle import RedisBucket, Throttle

SENDER = "+390612345678"  # a long code: 1 msg/s by default, overridden by --rate


async def _take(redis_url: str, prefix: str, rate: float, start_at: float, stop_at: float) -> list[float]:
    redis = Redis.from_url(redis_url)
    throttle = Throttle(RedisBucket(redis, prefix=prefix), {SenderKind.LONG_CODE: rate}, max_wait=3600)
    grants: list[float] = []
    await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        while time.time() < stop_at:
            await throttle.acquire(SENDER)
            grants.append(time.time())
    finally:
        await redis.aclose()
    return [t for t in grants if t < stop_at]


def worker(
    redis_url: str, prefix: str, rate: float, start_at: float, stop_at: float, out: Queue  # type: ignore[type-arg]
) -> None:
    """One sending process: the grant times it got, sent back through `out`."""
    out.put(asyncio.run(_take(redis_url, prefix, rate, start_at, stop_at)))


async def _cleanup(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    await redis.delete(prefix + SENDER)
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--rate", type=float, default=10.0, help="configured messages per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    ctx = multiprocessing.get_context("spawn")  # no forked event loops or Redis sockets
    out: Queue = ctx.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 3.0  # every process is up before the clock starts
    stop_at = start_at + args.seconds
    procs = [ctx.Process(target=worker, args=(args.redis_url, prefix, args.rate, start_at, stop_at, out))
             for _ in range(args.workers)]
    for proc in procs:
        proc.start()
    per_worker = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    asyncio.run(_cleanup(args.redis_url, prefix))
    grants = sorted(t for times in per_worker for t in times)
    # The first grant is the bucket's initial token; the rate is measured over the intervals after it.
    measured = (len(grants) - 1) / (grants[-1] - grants[0])
    print(f"workers: {args.workers}  seconds: {args.seconds:g}  grants: {len(grants)} "
          f"(per worker: {', '.join(str(len(t)) for t in per_worker)})")
    print(f"configured: {args.rate:g} msg/s  measured: {measured:.3f} msg/s  "
          f"ratio: {measured / args.rate:.4f}  (target 0.95-1.05)")


if __name__ == "__main__":
    main()

"""Full email ingest into SQLite against bare stdlib parsing of the same bytes, in the same run.

Corpus: CPython's email test messages (Lib/test/test_email/data/msg_*.txt) repeated to at least
5,000 messages. Each copy gets its own Message-ID header first, so every copy is really stored
(a repeated Message-ID would be a cheap duplicate). Ingest goes the way `hub ingest email` goes:
`ingest_stream` in batches (parse, quarantine, bounces, one transaction per batch), measured twice:
parsing in this process, then parsing in a pool of `--workers` parser processes while this
process stores (started and warmed before the clock starts; the warm-up time is printed).
Floor: `email.message_from_bytes(b, policy=default)` + `get_body()`, single process.
Run: `python bench/email_ingest.py [--count N] [--batch N] [--workers N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import tempfile
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

from hub import runtime as hub_runtime
from hub.channels.email.bulk import parser_pool, warm_up
from hub.channels.email.inbound import ingest_stream
from hub.settings import load_settings

MAILBOX = "reception@hotel.test"


def corpus(count: int) -> list[bytes]:
    """`count` unique messages built from the stdlib corpus (each copy with its own Message-ID)."""
    import test

    data = Path(test.__file__).parent / "test_email" / "data"
    base = [path.read_bytes() for path in sorted(data.glob("msg_*.txt"))]
    if not base:
        raise SystemExit(f"no msg_*.txt in {data}: install the Python test package")
    return [b"Message-ID: <bench-%d@bench.test>\n" % n + base[n % len(base)] for n in range(count)]


def floor_rate(messages: list[bytes]) -> float:
    """Messages per second of bare stdlib parsing plus get_body()."""
    start = time.perf_counter()
    for raw in messages:
        msg = email.message_from_bytes(raw, policy=policy.default)
        if isinstance(msg, EmailMessage):
            msg.get_body()
    return len(messages) / (time.perf_counter() - start)


async def ingest_rate(messages: list[bytes], batch: int, workers: int) -> tuple[float, dict[str, int], float]:
    """Messages per second of the full ingest into a fresh SQLite database, the outcomes, the pool's warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(database_url=f"sqlite:///{tmp}/hub.db", data_dir=Path(tmp), redis_url=None,
                                 smtp_from=MAILBOX)
        async with hub_runtime.running(settings) as runtime:
            pool = parser_pool(workers) if workers else None
            warm = time.perf_counter()
            if pool is not None:
                await warm_up(pool, workers)
            warm = time.perf_counter() - warm
            outcomes: dict[str, int] = {}
            mails = ((raw, f"bench#{n}") for n, raw in enumerate(messages))
            start = time.perf_counter()
            async for results in ingest_stream(runtime, mails, mailbox=MAILBOX, batch=batch, pool=pool,
                                               ahead=2 * max(workers, 1)):
                for result in results:
                    outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
            elapsed = time.perf_counter() - start
            if pool is not None:
                pool.shutdown()
    return len(messages) / elapsed, outcomes, warm


def main() -> None:
    """Print messages/s of full ingest and of the floor, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=200, help="mails per transaction (hub ingest email's)")
    parser.add_argument("--workers", type=int, default=2, help="parser processes (the machine has 2 cores)")
    args = parser.parse_args()
    messages = corpus(max(args.count, 5000))
    floor_rate(messages[:200])  # warm caches
    floor = floor_rate(messages)
    alone, outcomes, _ = asyncio.run(ingest_rate(messages, args.batch, 0))
    pooled, pooled_outcomes, warm = asyncio.run(ingest_rate(messages, args.batch, args.workers))
    assert pooled_outcomes == outcomes, (pooled_outcomes, outcomes)
    print(f"corpus: CPython test_email data, {len(messages)} messages, batches of {args.batch}")
    print(f"outcomes: {outcomes}")
    print(f"stdlib message_from_bytes+get_body (1 process): {floor:,.0f} msg/s")
    print(f"hub full ingest (SQLite), parse in-process:     {alone:,.0f} msg/s  ratio {alone / floor:.2f}")
    print(f"hub full ingest (SQLite), {args.workers} parser processes:   {pooled:,.0f} msg/s  "
          f"ratio {pooled / floor:.2f}"
          f"  (pool warm-up {warm:.2f} s, not timed)")
    print(f"ratio ingest/floor: {pooled / floor:.2f} with {args.workers} parser processes (target >= 0.5)")


if __name__ == "__main__":
    main()

"""Full email ingest into SQLite against bare stdlib parsing of the same bytes, in the same run.

Corpus: CPython's email test messages (Lib/test/test_email/data/msg_*.txt) repeated to at least
5,000 messages. Each copy gets its own Message-ID header first, so every copy is really stored
(a repeated Message-ID would be a cheap duplicate). Ingest goes the way the IMAP poller and
`hub ingest email` go: `ingest_raw_many` in batches (parse, quarantine, one transaction per batch).
Floor: `email.message_from_bytes(b, policy=default)` + `get_body()`.
Run: `python bench/email_ingest.py [--count N] [--batch N]`.
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
from hub.channels.email.inbound import ingest_raw_many
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


async def ingest_rate(messages: list[bytes], batch: int) -> tuple[float, dict[str, int]]:
    """Messages per second of the full ingest into a fresh SQLite database, and the outcomes."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(database_url=f"sqlite:///{tmp}/hub.db", data_dir=Path(tmp), redis_url=None,
                                 smtp_from=MAILBOX)
        async with hub_runtime.running(settings) as runtime:
            outcomes: dict[str, int] = {}
            start = time.perf_counter()
            for first in range(0, len(messages), batch):
                chunk = [(raw, f"bench#{first + n}") for n, raw in enumerate(messages[first:first + batch])]
                for result in await ingest_raw_many(runtime, chunk, mailbox=MAILBOX):
                    outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
            elapsed = time.perf_counter() - start
    return len(messages) / elapsed, outcomes


def main() -> None:
    """Print messages/s of full ingest and of the floor, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50, help="mails per transaction (the poller's default)")
    args = parser.parse_args()
    messages = corpus(max(args.count, 5000))
    floor_rate(messages[:200])  # warm caches
    floor = floor_rate(messages)
    ours, outcomes = asyncio.run(ingest_rate(messages, args.batch))
    print(f"corpus: CPython test_email data, {len(messages)} messages, batches of {args.batch}")
    print(f"outcomes: {outcomes}")
    print(f"stdlib message_from_bytes+get_body: {floor:,.0f} msg/s")
    print(f"hub full ingest (SQLite):           {ours:,.0f} msg/s")
    print(f"ratio ingest/floor: {ours / floor:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()

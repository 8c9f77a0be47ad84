"""Bulk ingest with parser processes gives what the single-process path gives, mail for mail."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub import runtime as hub_runtime
from hub.channels.email.bulk import ParseFailure, parse_batches, parse_many, parser_pool, warm_up
from hub.channels.email.inbound import EmailResult, ingest_stream, parse_options
from hub.core.envelopes import DeliveryUpdate, Inbound
from hub.settings import load_settings
from tests.unit.email._email_corpus import CORPUS

HOTEL = "reception@hotel.test"


def _stdlib_corpus() -> list[bytes]:
    test_package = pytest.importorskip("test")
    data = Path(test_package.__file__).parent / "test_email" / "data"
    return [path.read_bytes() for path in sorted(data.glob("msg_*.txt"))]


def _mails() -> list[bytes]:
    """The stdlib corpus, the reply corpus, and mutated copies (broken mail must fail alike)."""
    base = _stdlib_corpus() + [p.read_bytes() for p in sorted(CORPUS.rglob("*.eml"))]
    rng = random.Random(4)
    mutated = []
    for _ in range(60):
        raw = bytearray(rng.choice(base))
        for _ in range(4):
            at = rng.randrange(len(raw) + 1)
            raw[at:at] = rng.choice([b"\r\n", b"\x00", b"=?utf-8?q?=E8?=", b"\xe8\xff", b"--"])
        mutated.append(bytes(raw))
    return base + mutated


async def test_parser_processes_return_exactly_what_parsing_here_returns() -> None:
    mails = _mails()
    settings = load_settings(redis_url=None, smtp_from=HOTEL)
    # Mails without a Date get `now`, in every process alike.
    options = dataclasses.replace(parse_options(settings, HOTEL), now=datetime(2026, 1, 1, tzinfo=UTC))
    here = parse_many(mails, options)
    with parser_pool(2) as pool:
        await warm_up(pool, 2)
        there = [parsed for chunk in [mails[i:i + 25] for i in range(0, len(mails), 25)]
                 for parsed in pool.submit(parse_many, chunk, options).result()]
    assert there == here
    kinds = {type(p) for p in here}
    assert kinds == {Inbound, DeliveryUpdate, ParseFailure}  # the corpus exercises every kind


def _summary(result: EmailResult) -> dict[str, object]:
    summary = result.summary()
    summary.pop("source")
    return summary


async def _ingest(tmp_path: Path, mails: list[bytes], workers: int) -> list[dict[str, object]]:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", data_dir=tmp_path, redis_url=None,
                             smtp_from=HOTEL)
    found: list[dict[str, object]] = []
    async with hub_runtime.running(settings) as runtime:
        pairs = [(raw, f"m{n}") for n, raw in enumerate(mails)]
        if workers:
            with parser_pool(workers) as pool:
                async for results in ingest_stream(runtime, pairs, mailbox=HOTEL, batch=20, pool=pool):
                    found += [_summary(r) for r in results]
        else:
            async for results in ingest_stream(runtime, pairs, mailbox=HOTEL, batch=20):
                found += [_summary(r) for r in results]
    return found


async def test_bulk_ingest_through_parser_processes_stores_what_the_single_process_path_stores(
    tmp_path: Path,
) -> None:
    mails = _stdlib_corpus() * 2  # the second copy of each is a duplicate
    alone = await _ingest(tmp_path / "alone", mails, workers=0)
    pooled = await _ingest(tmp_path / "pooled", mails, workers=2)
    assert pooled == alone
    outcomes = {str(s["outcome"]) for s in alone}
    assert {"stored", "duplicate", "quarantined"} <= outcomes


async def test_a_parser_process_that_dies_costs_no_mail() -> None:
    mails = [(raw, f"m{n}") for n, raw in enumerate(_stdlib_corpus())]
    options = dataclasses.replace(parse_options(load_settings(redis_url=None, smtp_from=HOTEL), HOTEL),
                                  now=datetime(2026, 1, 1, tzinfo=UTC))
    with parser_pool(1) as pool:
        await warm_up(pool, 1)
        for pid in list(pool._processes):  # the kernel's OOM killer, say
            os.kill(pid, signal.SIGKILL)
        got = [parsed async for _, batch in parse_batches(mails, options, batch=10, pool=pool) for parsed in batch]
    assert got == parse_many([raw for raw, _ in mails], options)

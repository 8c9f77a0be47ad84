"""Shared-inbox API latency on a large PostgreSQL data set, beside a bare `SELECT 1` through the same pool.

Usage:
  python scripts/seed_large.py --messages 1000000 --recreate      # once (COPY; ~1M messages, 100k customers)
  python bench/inbox_api.py [--messages 1000000] [--seed] [--requests 200]

With --seed the database is (re)created and seeded first with --messages messages. The app runs
in this process on a local port and is driven over HTTP, so the figures include aiohttp, JSON and
auth; replies are enqueued to Redis (arq) without a worker, so "reply" is the enqueue path only.
Targets: p95 <= 30 ms for list and timeline, <= 150 ms for search.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.app import create_app
from hub.keys import RUNTIME
from hub.settings import load_settings
from hub.store.models import Conversation
from scripts import seed_large

TARGETS = {"list": 30.0, "list (agent, open)": 30.0, "list page 2": 30.0, "timeline": 30.0, "search (rare)": 150.0,
           "search (common)": 150.0, "counts": 30.0}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(round(q * (len(ordered) - 1)), len(ordered) - 1)]


async def timed(n: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


async def get_json(http: aiohttp.ClientSession, url: str, token: str) -> Any:
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, (url, response.status, await response.text())
        return await response.json()


async def login(http: aiohttp.ClientSession, base: str, email: str) -> str:
    async with http.post(f"{base}/api/v1/auth/login", json={"email": email, "password": "bench-password-1"}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["token"])


async def run(args: argparse.Namespace) -> None:
    settings = load_settings(database_url=args.database_url, redis_url=args.redis_url, data_dir=Path("var/bench"))
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    runtime = app[RUNTIME]
    rng = random.Random(5)
    try:
        async with runtime.factory() as session:
            top = int((await session.execute(select(func.max(Conversation.id)))).scalar_one() or 0)
            messages = int((await session.execute(text("SELECT count(*) FROM message"))).scalar_one())
        async with aiohttp.ClientSession() as http:
            admin, agent = await login(http, base, "bench@hotel.test"), await login(http, base, "agent0@hotel.test")
            results = await measure(http, base, admin, agent, top, rng, args.requests, runtime)
    finally:
        await runner.cleanup()
    report(results, messages, top)


async def measure(http: aiohttp.ClientSession, base: str, admin: str, agent: str, top: int, rng: random.Random,
                  n: int, runtime: Any) -> dict[str, list[float]]:
    first = await get_json(http, f"{base}/api/v1/conversations?limit=50", admin)
    cursor = first["next_before"]
    ids = [rng.randint(1, top) for _ in range(n)]
    rare = [f"BK{rng.randrange(500_000):06d}" for _ in range(n)]
    common = ["taxi airport", "cuscino", "wifi camera", "invoice company", "colazione"]

    async def select_one(_: int) -> None:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def reply(i: int) -> None:
        url = f"{base}/api/v1/conversations/{ids[i]}/reply"
        async with http.post(url, json={"body": f"bench reply {i}"},
                             headers={"Authorization": f"Bearer {admin}"}) as response:
            assert response.status in (202, 400), await response.text()  # 400: no identity on that channel

    plan: dict[str, Callable[[int], Awaitable[Any]]] = {
        "SELECT 1 (pool)": select_one,
        "list": lambda i: get_json(http, f"{base}/api/v1/conversations?limit=50", admin),
        "list (agent, open)": lambda i: get_json(http, f"{base}/api/v1/conversations?status=open&limit=50", agent),
        "list page 2": lambda i: get_json(http, f"{base}/api/v1/conversations?limit=50&before={cursor}", admin),
        "counts": lambda i: get_json(http, f"{base}/api/v1/inbox/counts", agent),
        "timeline": lambda i: get_json(http, f"{base}/api/v1/conversations/{ids[i]}/timeline?limit=50", admin),
        "search (rare)": lambda i: get_json(http, f"{base}/api/v1/search?q={rare[i]}", admin),
        "search (common)": lambda i: get_json(http, f"{base}/api/v1/search?q={common[i % 5]}", admin),
        "reply enqueue": reply,
    }
    results: dict[str, list[float]] = {}
    for name, call in plan.items():
        await timed(min(10, n), call)  # warm caches and the pool
        results[name] = await timed(n, call)
    return results


def report(results: dict[str, list[float]], messages: int, conversations: int) -> None:
    floor = percentile(results["SELECT 1 (pool)"], 0.95)
    print(f"\n{messages:,} messages, {conversations:,} conversations; {len(results['list'])} requests each")
    print(f"{'operation':<20} {'p50 ms':>8} {'p95 ms':>8} {'p95/SELECT1':>12} {'target':>8}")
    for name, samples in results.items():
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        target = TARGETS.get(name)
        mark = "" if target is None else (" ok" if p95 <= target else " SLOW")
        print(f"{name:<20} {p50:8.1f} {p95:8.1f} {p95 / floor:12.1f} {target or '':>8}{mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description="shared-inbox API latency")
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/hub_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", action="store_true", help="recreate and seed the database first")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if args.seed:
        url = load_settings(database_url=args.database_url).database_url
        asyncio.run(seed_large.recreate(url))
        asyncio.run(seed_large.seed(url, args.messages, max(args.messages // 10, 1)))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

"""Signed Twilio SMS webhooks per second: `hub serve` (SQLite) against a bare validating handler.

In one run it starts `hub serve` on SQLite in a temp dir and a bare aiohttp server whose handler
only checks the same X-Twilio-Signature, then drives each for `--seconds` (20 by default) from a
load generator in another process (aiohttp client, `--concurrency` connections, a fresh
MessageSid per request). Prints accepted/s of each and their ratio; target >= 0.3.
In-process jobs may lag behind the answers (it is a queue), so the bench then waits for every
accepted message to be ingested and prints how long after the load stopped the last one was
(Message rows of channel sms against accepted requests), and the load average around each run.
With `--redis-url`, it also measures `hub serve` handing ingest jobs to arq (no in-process jobs
competing for the loop), the scale-out shape where `hub worker` processes do the ingest.
Run: `python bench/webhooks.py [--seconds 20] [--concurrency 32] [--drain-timeout 600]
[--redis-url redis://127.0.0.1:6379/15]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, TCPConnector, web
from multidict import MultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

TOKEN = "bench-auth-token"
PATH = "/webhooks/twilio/sms"
HUB_NUMBER = "+390612345678"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, tries: int = 300) -> None:
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])), 0.1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url}")


# --- the floor: a bare aiohttp handler doing only the signature check -------------------------


def bare_server(port: int) -> None:
    """Serve PATH with nothing but Twilio's signature check and an empty TwiML answer."""
    validator, base = RequestValidator(TOKEN), f"http://127.0.0.1:{port}"
    empty = str(MessagingResponse())

    async def handler(request: web.Request) -> web.Response:
        form = MultiDict(await request.post())
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(base + request.path_qs, form, signature):
            raise web.HTTPForbidden()
        return web.Response(text=empty, content_type="text/xml")

    app = web.Application()
    app.router.add_post(PATH, handler)
    web.run_app(app, host="127.0.0.1", port=port, print=lambda _msg: None)


# --- the load generator ------------------------------------------------------------------------


async def _load(base: str, seconds: float, concurrency: int, tag: str) -> dict[str, float]:
    validator, url = RequestValidator(TOKEN), base + PATH
    counts = {"accepted": 0, "failed": 0}
    stop_at = time.monotonic() + seconds
    seq = iter(range(10**9))

    async def one_client(session: ClientSession) -> None:
        while time.monotonic() < stop_at:
            n = next(seq)
            form = {"MessageSid": f"SM{tag}{n:024x}", "AccountSid": "AC" + "0" * 32,
                    "From": f"+39347{n % 1000:07d}", "To": HUB_NUMBER, "Body": f"Richiesta numero {n}",
                    "NumMedia": "0", "NumSegments": "1"}
            headers = {"X-Twilio-Signature": validator.compute_signature(url, form)}
            async with session.post(url, data=form, headers=headers) as response:
                await response.read()
                counts["accepted" if response.status == 200 else "failed"] += 1

    started = time.monotonic()
    async with ClientSession(connector=TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(one_client(session) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return {"accepted": counts["accepted"], "failed": counts["failed"], "seconds": elapsed}


def load(base: str, seconds: float, concurrency: int) -> dict[str, float]:
    """Run the load generator in its own process and return its JSON summary."""
    cmd = [sys.executable, __file__, "--load", base, "--seconds", str(seconds),
           "--concurrency", str(concurrency)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


# --- the two targets ---------------------------------------------------------------------------


def start_hub(workdir: Path, port: int, redis_url: str | None = None) -> subprocess.Popen[bytes]:
    """`hub serve` on a fresh SQLite file; jobs run in-process, or go to arq when redis_url is set."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite:///{workdir / 'hub.db'}", "HUB_DATA_DIR": str(workdir),
           "HUB_TWILIO_AUTH_TOKEN": TOKEN, "HUB_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
           "HUB_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    env.pop("HUB_REDIS_URL", None)
    if redis_url:
        env["HUB_REDIS_URL"] = redis_url
    log = (workdir / "hub.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def ingested(db: Path) -> int:
    """Message rows of channel sms in the hub's SQLite file (read-only; WAL lets it read beside the writer)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return int(conn.execute("SELECT count(*) FROM message WHERE channel = 'sms'").fetchone()[0])


def wait_drained(db: Path, accepted: int, stopped_at: float, timeout: float) -> tuple[int, float]:
    """Poll until every accepted message is ingested (or `timeout`); the count and seconds after `stopped_at`."""
    while True:
        count = ingested(db)
        if count >= accepted or time.monotonic() - stopped_at > timeout:
            return count, time.monotonic() - stopped_at
        time.sleep(0.1)


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(70)  # aiohttp gives open connections up to 60 s
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_target(
    name: str, proc: subprocess.Popen[bytes], base: str, args: argparse.Namespace, db: Path | None = None
) -> float:
    """Warm up, load for `args.seconds`, print accepted/s; with `db`, also wait for the ingest to drain."""
    try:
        wait_http(base)
        warm = load(base, 2.0, args.concurrency)  # warm-up: migrations done, caches and pools filled
        before = load_average()
        result = load(base, args.seconds, args.concurrency)
        stopped_at, after = time.monotonic(), load_average()
        drained = None if db is None else wait_drained(
            db, int(warm["accepted"] + result["accepted"]), stopped_at, args.drain_timeout)
    finally:
        stop(proc)
    rate = result["accepted"] / result["seconds"]
    print(f"{name:>14}: {rate:8.1f} accepted/s  ({int(result['accepted'])} in {result['seconds']:.1f} s, "
          f"{int(result['failed'])} failed; {before} before, {after} after)")
    if drained is not None:
        count, seconds = drained
        total = int(warm["accepted"] + result["accepted"])
        state = "all ingested" if count >= total else f"NOT drained after {args.drain_timeout:.0f} s"
        print(f"{'':>14}  ingest: {count}/{total} sms messages stored (warm-up included), {state}; "
              f"the last {seconds:.1f} s after the load stopped")
    return rate


async def _clear_arq(redis_url: str) -> None:
    """Drop the jobs nobody ran (no `hub worker` in this bench) and their keys."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    keys = [key async for key in redis.scan_iter("arq:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--drain-timeout", type=float, default=600.0,
                        help="how long to wait for in-process ingest to catch up after the load")
    parser.add_argument("--redis-url", default=None,
                        help="also measure `hub serve` queueing its ingest jobs to arq on this Redis "
                             "(a database the bench may clear of arq keys, e.g. redis://127.0.0.1:6379/15)")
    parser.add_argument("--load", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return
    if args.load:
        tag = f"{os.getpid():06x}"[-6:]
        print(json.dumps(asyncio.run(_load(args.load, args.seconds, args.concurrency, tag))))
        return
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start_hub(Path(tmp) / "a", port)
        rates["hub serve"] = run_target("hub serve", proc, f"http://127.0.0.1:{port}", args,
                                        db=Path(tmp) / "a" / "hub.db")
        if args.redis_url:
            port = free_port()
            proc = start_hub(Path(tmp) / "b", port, args.redis_url)
            try:
                rates["hub serve+arq"] = run_target("hub serve+arq", proc, f"http://127.0.0.1:{port}", args)
            finally:
                asyncio.run(_clear_arq(args.redis_url))
        port = free_port()
        bare = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)])
        bare_rate = run_target("bare handler", bare, f"http://127.0.0.1:{port}", args)
    for name, rate in rates.items():
        print(f"ratio {name}/bare: {rate / bare_rate:.3f}  (target >= 0.3)")


if __name__ == "__main__":
    main()

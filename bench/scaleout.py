"""Scale-out: W `hub serve` + K `hub worker` processes on PostgreSQL + Redis under mixed load.

Drives signed Twilio SMS webhooks (each posted twice, as Twilio retries do), an email import
through `hub ingest email`, agent replies through the API and an email campaign, then checks
every message stored once, every send done once, and every domain event seen on the SSE stream
of every web process. Prints inbound messages/s for 2+2 beside 1+1 on the same machine.

    python bench/scaleout.py [--sms 300] [--emails 60] [--replies 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col

from hub.ops.status import HEARTBEAT_PREFIX
from hub.store.models import DomainEvent, Message, OutboxItem

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/scaleout.py`: the local fakes live in tests/support

from tests.support.services import REDIS_BASE, free_port, postgres_database, wait_port  # noqa: E402
from tests.support.smtp_sink import SmtpSink  # noqa: E402
from tests.support.twilio_fake import (  # noqa: E402
    AUTH_TOKEN,
    FakeTwilio,
    fake_twilio,
    sign,
    sms_form,
    twilio_settings,
)

ADMIN, PASSWORD = "admin@hotel.test", "Scale-Out-Pass-9"
SMS_PATH = "/webhooks/twilio/sms"


@dataclass
class Load:
    sms: int = 300
    emails: int = 60
    replies: int = 20
    campaign: bool = True


@dataclass
class Result:
    webs: int
    workers: int
    inbound: int
    seconds: float
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.inbound / self.seconds if self.seconds else 0.0


def hub_env(db_url: str, redis_url: str, data_dir: Path, twilio: FakeTwilio, smtp_port: int) -> dict[str, str]:
    """Configuration for every process: only HUB_* variables, as in production."""
    tw = twilio_settings(twilio.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({
        "HUB_DATABASE_URL": db_url, "HUB_REDIS_URL": redis_url, "HUB_DATA_DIR": str(data_dir),
        "HUB_PUBLIC_URL": tw["public_url"], "HUB_TWILIO_ACCOUNT_SID": tw["twilio_account_sid"],
        "HUB_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "HUB_TWILIO_BASE_URL": twilio.url, "HUB_TWILIO_FROM": tw["twilio_from"],
        "HUB_SMTP_HOST": "127.0.0.1", "HUB_SMTP_PORT": str(smtp_port), "HUB_SMTP_FROM": "reception@hotel.test",
        "HUB_SMS_RATES": json.dumps({"long_code": 500, "toll_free": 500, "short_code": 500, "whatsapp": 500}),
        "HUB_CAMPAIGN_RATES": json.dumps({"email": 500, "sms": 500}), "HUB_CAMPAIGN_TICK_SECONDS": "1",
        "HUB_LOG_FORMAT": "json", "HUB_LOG_LEVEL": "WARNING", "HUB_LOGIN_IP_MAX_FAILURES": "1000",
        "PYTHONPATH": str(ROOT),
    })
    return env


@asynccontextmanager
async def processes(env: dict[str, str], webs: int, workers: int, logs: Path) -> AsyncIterator[list[int]]:
    """Start the web and worker processes; yields the web ports; stops them all (by pid) at the end."""
    procs: list[asyncio.subprocess.Process] = []
    ports = [free_port() for _ in range(webs)]
    commands = [(f"web{n}", ["serve", "--port", str(port)]) for n, port in enumerate(ports)]
    commands += [(f"worker{n}", ["worker"]) for n in range(workers)]
    try:
        for name, args in commands:
            with (logs / f"{name}.log").open("wb") as out:
                procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "hub", *args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT))
        for port in ports:
            await asyncio.to_thread(wait_port, port, 600)
        await _workers_ready(env["HUB_REDIS_URL"], workers)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _workers_ready(redis_url: str, workers: int, within: float = 60.0) -> None:
    """Wait for every worker's heartbeat (hub/ops/jobs.py), so the load meets running workers."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        async def ready() -> bool:
            return len([k async for k in client.scan_iter(match=HEARTBEAT_PREFIX + "*")]) >= workers

        if not await wait_for(ready, within):
            raise TimeoutError(f"{workers} workers did not start within {within} s")
    finally:
        await client.aclose()


class Stream:
    """One SSE connection: the event ids it delivered."""

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.task: asyncio.Task[None] | None = None

    async def run(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        async with http.get(url, headers={"Authorization": f"Bearer {token}"},
                            timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            async for raw in response.content:
                line = raw.decode().strip()
                if line.startswith("id:"):
                    self.ids.add(int(line[3:].strip()))


def write_emails(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        msg = EmailMessage()
        msg["From"] = f"guest{n % 40}@example.com"
        msg["To"] = "reception@hotel.test"
        msg["Subject"] = f"Booking question {n}"
        msg["Message-ID"] = f"<scale-{n}@example.com>"
        msg.set_content(f"Hello, question number {n} about my stay.")
        (folder / f"{n:05d}.eml").write_bytes(bytes(msg))


async def post_webhooks(http: aiohttp.ClientSession, ports: list[int], count: int) -> None:
    """Every form twice, to two different web processes (Twilio retries land anywhere)."""
    sem = asyncio.Semaphore(32)

    async def one(n: int, port: int) -> None:
        form = sms_form(f"SMscale{n:06d}", f"message {n}", sender=f"+3934700{n % 50:05d}")
        async with sem, http.post(f"http://127.0.0.1:{port}{SMS_PATH}", data=form, headers=sign(SMS_PATH, form)) as r:
            if r.status != 200:
                raise AssertionError(f"webhook {n} -> {r.status}: {await r.text()}")

    await asyncio.gather(*(one(n, ports[(n + k) % len(ports)]) for n in range(count) for k in (0, 1)))


async def api(http: aiohttp.ClientSession, port: int, token: str, method: str, path: str, **kw: Any) -> Any:
    async with http.request(method, f"http://127.0.0.1:{port}{path}",
                            headers={"Authorization": f"Bearer {token}"}, **kw) as r:
        body = await r.json()
        if r.status >= 300:
            raise AssertionError(f"{method} {path} -> {r.status}: {body}")
        return body


async def start_campaign(http: aiohttp.ClientSession, port: int, token: str) -> int:
    await api(http, port, token, "POST", "/api/v1/templates", json={
        "name": "autumn", "channel": "email", "language": "it", "subject": "Autunno",
        "body_text": "Ciao {{ customer.name | default('ospite') }}, offerta d'autunno."})
    seg = await api(http, port, token, "POST", "/api/v1/segments", json={
        "name": "everyone", "condition": {"field": "customer.language", "op": "equals", "value": "it"}})
    made = await api(http, port, token, "POST", "/api/v1/campaigns", json={
        "name": "autumn", "channel": "email", "template_name": "autumn", "segment_id": seg["id"]})
    await api(http, port, token, "POST", f"/api/v1/campaigns/{made['id']}/schedule", json={})
    return int(made["id"])


async def wait_for(check: Any, within: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(every)
    return False


async def _count(engine: Any, stmt: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def verify(result: Result, engine: Any, twilio: FakeTwilio, sink: SmtpSink, streams: list[Stream]) -> None:
    """Stored once, sent once, every event on every stream."""
    async with engine.connect() as conn:
        dupes = (await conn.execute(select(col(Message.external_id)).where(col(Message.external_id).is_not(None))
                                    .group_by(col(Message.channel), col(Message.external_id))
                                    .having(func.count() > 1))).all()
        sms_out = (await conn.execute(select(func.count()).select_from(Message).where(
            col(Message.direction) == "out", col(Message.channel) == "sms"))).scalar_one()
        event_ids = set((await conn.execute(select(col(DomainEvent.id)))).scalars())
    if dupes:
        result.problems.append(f"messages stored twice: {dupes[:5]}")
    sids = [r.get("Body", "") + r["To"] for r in twilio.requests]
    if len(sids) != len(set(sids)) or len(sids) != sms_out:
        result.problems.append(f"SMS sends: {len(sids)} requests ({len(set(sids))} distinct) for {sms_out} replies")
    ids = [e.original_content.split(b"Message-ID:", 1)[-1].split(b"\n", 1)[0] for e in sink.sink.envelopes]
    if len(ids) != len(set(ids)):
        result.problems.append(f"emails sent twice: {len(ids) - len(set(ids))}")
    for n, stream in enumerate(streams):
        if not await wait_for(lambda s=stream: _true(event_ids <= s.ids), 15):
            result.problems.append(f"stream {n} missed {len(event_ids - stream.ids)} of {len(event_ids)} events")
    result.figures.update(events=len(event_ids), sms_sent=len(sids), emails_sent=len(ids))


async def _true(value: bool) -> bool:
    return value


async def _reply_all(http: aiohttp.ClientSession, ports: list[int], token: str, engine: Any, count: int) -> int:
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT id, channel FROM conversation ORDER BY id LIMIT :n"), {"n": count})).all()
    await asyncio.gather(*(api(http, ports[i % len(ports)], token, "POST", f"/api/v1/conversations/{cid}/reply",
                               json={"body": f"Grazie, risposta {i}"}) for i, (cid, _ch) in enumerate(rows)))
    return len(rows)


async def run(webs: int, workers: int, load: Load, work: Path) -> Result:
    """One full run on a fresh PostgreSQL database and a flushed Redis database."""
    async with postgres_database() as db_url, fake_twilio() as twilio:
        redis_url = f"{REDIS_BASE}/{int(os.environ.get('HUB_TEST_REDIS_DB', '11')) + 1}"
        rclient = aioredis.Redis.from_url(redis_url)
        await rclient.flushdb()
        with SmtpSink() as sink:
            env = hub_env(db_url, redis_url, work / "data", twilio, sink.port)
            init = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub", "init", "--admin-email", ADMIN, "--admin-password", PASSWORD, env=env,
                cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, init_err = await init.communicate()
            assert init.returncode == 0, init_err.decode()[-2000:]
            write_emails(work / "mail", load.emails)
            engine = create_async_engine(db_url)
            try:
                async with processes(env, webs, workers, work) as ports:
                    result = await _drive(webs, workers, load, work, env, ports, engine, twilio, sink)
            finally:
                await engine.dispose()
                await rclient.flushdb()
                await rclient.aclose()
        return result


async def _drive(webs: int, workers: int, load: Load, work: Path, env: dict[str, str], ports: list[int],
                 engine: Any, twilio: FakeTwilio, sink: SmtpSink) -> Result:
    async with aiohttp.ClientSession() as http:
        login = await (await http.post(f"http://127.0.0.1:{ports[0]}/api/v1/auth/login",
                                       json={"email": ADMIN, "password": PASSWORD})).json()
        token = login["token"]
        streams = [Stream() for _ in ports]
        for stream, port in zip(streams, ports, strict=True):
            stream.task = asyncio.create_task(stream.run(http, f"http://127.0.0.1:{port}/api/v1/events", token))
        expected_in = load.sms + load.emails
        started = time.monotonic()
        importer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "ingest", "email", str(work / "mail"), env=env, cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await post_webhooks(http, ports, load.sms)
        inbound = select(func.count()).select_from(Message).where(col(Message.direction) == "in")
        stored = await wait_for(lambda: _ge(engine, inbound, expected_in), 60)
        seconds = time.monotonic() - started
        await importer.wait()
        result = Result(webs, workers, await _count(engine, inbound), seconds)
        if not stored:
            result.problems.append(f"only {result.inbound} of {expected_in} inbound messages stored")
        replies = await _reply_all(http, ports, token, engine, load.replies)
        campaign = await start_campaign(http, ports[-1], token) if load.campaign else None
        pending = select(func.count()).select_from(OutboxItem).where(col(OutboxItem.status).in_(("queued", "running")))
        if not await wait_for(lambda: _eq(engine, pending, 0), 30):
            result.problems.append(f"{await _count(engine, pending)} outbox items still pending")
        if campaign is not None:
            result.figures["campaign"] = await _campaign_done(engine, campaign)
        await verify(result, engine, twilio, sink, streams)
        result.figures["replies"] = replies
        for stream in streams:
            if stream.task is not None:
                stream.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream.task
        return result


async def _campaign_done(engine: Any, campaign_id: int) -> dict[str, int]:
    """Wait for the campaign's recipients to leave queued/sending; returns recipients by status."""
    stmt = text("SELECT count(*) FROM campaignrecipient WHERE campaign_id = :c AND status IN ('queued', 'sending')")

    async def done() -> bool:
        async with engine.connect() as conn:
            materialised = (await conn.execute(text("SELECT materialised_at IS NOT NULL FROM campaign WHERE id = :c"),
                                               {"c": campaign_id})).scalar_one()
            left = (await conn.execute(stmt, {"c": campaign_id})).scalar_one()
        return bool(materialised) and left == 0

    await wait_for(done, 30)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT status, count(*) FROM campaignrecipient WHERE campaign_id = :c "
                                        "GROUP BY status"), {"c": campaign_id})).all()
    return {status: int(n) for status, n in rows}


async def _ge(engine: Any, stmt: Any, target: int) -> bool:
    return await _count(engine, stmt) >= target


async def _eq(engine: Any, stmt: Any, target: int) -> bool:
    return await _count(engine, stmt) == target


def report(results: list[Result]) -> str:
    lines = [f"{'setup':<8}{'inbound':>9}{'seconds':>9}{'msg/s':>9}  figures"]
    lines += [f"{r.webs}+{r.workers:<6}{r.inbound:>9}{r.seconds:>9.2f}{r.rate:>9.1f}  {r.figures}" for r in results]
    if len(results) == 2 and results[0].rate:
        lines.append(f"2+2 / 1+1 = {results[1].rate / results[0].rate:.2f}x")
    # The machine is shared: a figure means little without the load it was measured under.
    lines.append("load average: " + " ".join(f"{n:.2f}" for n in os.getloadavg()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sms", type=int, default=300)
    parser.add_argument("--emails", type=int, default=60)
    parser.add_argument("--replies", type=int, default=20)
    args = parser.parse_args()
    load = Load(args.sms, args.emails, args.replies)

    async def both() -> list[Result]:
        import tempfile

        out = []
        for webs, workers in ((1, 1), (2, 2)):
            with tempfile.TemporaryDirectory() as tmp:
                out.append(await run(webs, workers, load, Path(tmp)))
        return out

    results = asyncio.run(both())
    print(report(results))
    for r in results:
        for problem in r.problems:
            print(f"PROBLEM {r.webs}+{r.workers}: {problem}")


if __name__ == "__main__":
    main()

"""Two real `hub worker` processes, real Redis, PostgreSQL (or a SQLite file), an SMTP sink process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.campaigns.config import CampaignConfig
from hub.settings import load_settings
from tests.integration.campaigns import seed
from tests.integration.campaigns.common import schedule_now, store, wait_completed
from tests.integration.campaigns.harness import Sink, Worker, redis_server, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.redis]

RECIPIENTS = 5000


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_5000_recipients_exactly_once_with_one_click_unsubscribe(database_url: str, tmp_path: Path) -> None:
    with redis_server() as redis:
        sink = Sink(tmp_path / "sink.jsonl")
        async with store(database_url, tmp_path) as rt:
            await seed.customers(rt.factory, RECIPIENTS)
            campaign_id = await seed.campaign(rt.factory)
            env = worker_env(database_url, redis.url, sink.port, tmp_path / "data")
            workers = [Worker(env, tmp_path / f"worker{n}.log") for n in range(2)]
            try:
                await schedule_now(rt, campaign_id)
                final = await wait_completed(rt, campaign_id)
                assert final == {"sent": RECIPIENTS}
                counts = sink.counts()
                assert len(counts) == RECIPIENTS and set(counts.values()) == {1}
                for line in sink.lines()[:200]:
                    n = int(re.search(r"guest(\d+)@", line["rcpt"]).group(1))  # type: ignore[union-attr]
                    assert f"Guest {n} " in line["text"] and f"room {100 + n % 50}" in line["text"]
                    assert line["post"] == "List-Unsubscribe=One-Click"
                    assert line["unsubscribe_raw"] == line["unsubscribe"]  # plain ASCII, no encoded words
                # One-click unsubscribe from the header of a received message, then a second campaign.
                first = next(line for line in sink.lines() if line["rcpt"] == seed.address(7))
                url = re.search(r"<(https://hub\.test[^>]+)>", first["unsubscribe"]).group(1)  # type: ignore[union-attr]
                web_settings = load_settings(database_url=database_url, data_dir=tmp_path / "web", redis_url=None,
                                             public_url="https://hub.test")
                async with TestClient(TestServer(create_app(web_settings))) as client:
                    answer = await client.post(url.removeprefix("https://hub.test"), data="List-Unsubscribe=One-Click")
                    assert answer.status == 200
                second = await seed.campaign(rt.factory, name="Second", template="second", config=CampaignConfig(),
                                             condition={"field": "customer.id", "op": "lte", "value": 10})
                await schedule_now(rt, second)
                assert await wait_completed(rt, second) == {"sent": 9, "skipped": 1}
                assert sink.counts()[seed.address(7)] == 1
            finally:
                for worker in workers:
                    worker.stop()
                sink.stop()

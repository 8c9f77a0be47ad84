"""Scale-out with real processes: 2 `hub serve` + 2 `hub worker` on PostgreSQL and Redis (bench/scaleout.py).

Mixed load (signed SMS webhooks posted twice to different web processes, an email import, API
replies, an email campaign); every message stored once, every send done once, no event missing
from either web process's SSE stream. Prints inbound messages/s for 2+2 beside 1+1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scaleout import Load, report, run

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


async def test_two_web_two_workers_store_and_send_once_and_stream_everything(tmp_path: Path) -> None:
    load = Load(sms=40, emails=8, replies=6, campaign=True)
    results = []
    for webs, workers in ((1, 1), (2, 2)):
        work = tmp_path / f"{webs}x{workers}"
        work.mkdir()
        results.append(await run(webs, workers, load, work))
    print("\n" + report(results))
    for result in results:
        assert result.problems == [], (result.webs, result.workers, result.problems)
        assert result.inbound == load.sms + load.emails
        assert result.figures["sms_sent"] + result.figures["emails_sent"] >= load.replies
        assert result.figures["campaign"].get("sent", 0) > 0

"""Scale-out with real processes: 2 `hub serve` + 2 `hub worker` on PostgreSQL and Redis (bench/scaleout.py).

Mixed load (signed SMS webhooks posted twice to different web processes, an email import, API
replies, an email campaign); every message stored once, every send done once, no event missing
from either web process's SSE stream. Inbound messages/s for 2+2 beside 1+1 (and the load
average) go to the `figures` section of the pytest summary and to tests/artifacts/scaleout.txt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.scaleout import Load, report, run
from tests.conftest import ARTIFACTS, FIGURES

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


async def test_two_web_two_workers_store_and_send_once_and_stream_everything(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    load = Load(sms=40, emails=8, replies=6, campaign=True)
    results = []
    for webs, workers in ((1, 1), (2, 2)):
        work = tmp_path / f"{webs}x{workers}"
        work.mkdir()
        results.append(await run(webs, workers, load, work))
    figures = report(results)
    record_property(FIGURES, figures)  # shown in the `figures` section of the pytest summary
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "scaleout.txt").write_text(figures + "\n")
    assert [(r.webs, r.workers) for r in results] == [(1, 1), (2, 2)]
    for result in results:
        assert result.problems == [], (result.webs, result.workers, result.problems)
        assert result.inbound == load.sms + load.emails
        assert result.figures["sms_sent"] + result.figures["emails_sent"] >= load.replies
        assert result.figures["campaign"].get("sent", 0) > 0

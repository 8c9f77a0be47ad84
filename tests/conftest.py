"""Fixtures that start real services: SQLite files, PostgreSQL databases, Redis, the web app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from hub import accounts
from hub import runtime as hub_runtime
from hub.app import create_app
from hub.settings import Settings, load_settings
from tests.support.services import REDIS_BASE, REDIS_DB, postgres_database

pytest_plugins = ["tests.support.twilio_fake"]  # the `twilio` fixture (a local fake Twilio)

ARTIFACTS = Path(__file__).parent / "artifacts"
# record_property(FIGURES, text): printed at the end of the run, where `pytest -q` (and the
# pytest-xdist workers of scripts/test.sh) would otherwise swallow a print.
FIGURES = "figures"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show the figures tests recorded (benchmarks run as tests, such as the scale-out test)."""
    found = [(report.nodeid, str(value)) for reports in terminalreporter.stats.values() for report in reports
             if getattr(report, "when", None) == "call"
             for name, value in getattr(report, "user_properties", ()) if name == FIGURES]
    if found:
        terminalreporter.section("figures")
        for nodeid, text in found:
            terminalreporter.write_line(f"{nodeid}\n{text}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                         mail_domain="hub.test", smtp_from="reception@hotel.test")


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[hub_runtime.Runtime]:
    """A migrated runtime with the in-process dispatcher running."""
    async with hub_runtime.running(settings) as rt:
        yield rt


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The machine's Redis on a database number of its own, flushed before and after."""
    url = f"{REDIS_BASE}/{REDIS_DB}"
    client = aioredis.from_url(url)
    await client.flushdb()
    yield url
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """The real app on a local port, driven over HTTP."""
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def make_agent(rt: hub_runtime.Runtime, email: str, role: str) -> tuple[int, str]:
    """An agent with a token; returns (agent id, bearer token)."""
    async with rt.factory() as session, session.begin():
        agent = await accounts.add_agent(session, email, role=role, password="correct-horse-9")
        token = await accounts.create_token(session, agent)
        assert agent.id is not None
        return agent.id, token

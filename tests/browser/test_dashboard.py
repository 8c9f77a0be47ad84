"""The reports page in Debian's chromium on the demo hotel plus a year of stays: every chart draws."""

from __future__ import annotations

import shutil
from datetime import date

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import async_playwright
from sqlmodel import col, select

from hub import demo
from hub.analytics import classifier, orders
from hub.keys import RUNTIME
from hub.runtime import Runtime
from hub.store.models import Customer
from hub.web.security import SESSION_COOKIE
from tests.conftest import ARTIFACTS, make_agent

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
CHARTS = ("stages", "retention", "cohorts", "complaints", "workload")

pytestmark = pytest.mark.browser


def stays_csv(customer_ids: list[int], today: date) -> str:
    """A year of stays: each customer comes back in some months (a fixed pattern), first ones earlier."""
    lines = ["external_id,date,amount,customer_id,product"]
    for n, cid in enumerate(customer_ids):
        for k in range(12):
            month = today.year * 12 + today.month - 1 - k
            day = date(month // 12, month % 12 + 1, 1 + n % 27)
            if (n * 7 + k * 3 + n * k) % 5 < 2 and k <= 6 + n % 6 and day <= today:
                product = ("room", "suite", "spa", "dinner")[(n + k) % 4]
                lines.append(f"demo-stay-{cid}-{k},{day.isoformat()},{120 + 80 * (n % 2) + 10 * k},{cid},{product}")
    return "\n".join(lines) + "\n"


async def seed(rt: Runtime) -> str:
    """Demo data, stays, one classifier run; returns an admin's session token."""
    await demo.seed(rt, customers=40)
    async with rt.factory() as session:
        ids = list((await session.execute(select(col(Customer.id)).order_by(col(Customer.id)))).scalars())
    async with rt.factory() as session, session.begin():
        report = await orders.import_text(session, "demo-stays.csv", stays_csv([i for i in ids if i], date.today()))
        assert report.errors == [] and report.inserted > 50
    async with rt.factory() as session, session.begin():
        moved = await classifier.classify(session, handlers=rt.handlers)
        assert moved.changed > 0
    return (await make_agent(rt, "director@aurora.hotel.test", "admin"))[1]


async def test_dashboard_draws_every_chart(client: TestClient[web.Request, web.Application],
                                          database_url: str) -> None:
    assert client.app is not None
    token = await seed(client.app[RUNTIME])
    url = str(client.make_url("/reports"))
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                          headless=True, args=ARGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 1700})
        await context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": url}])
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        response = await page.goto(url)
        assert response is not None and response.status == 200
        drawn = {name: await page.locator(f"#{name} svg.report-chart rect").count() for name in CHARTS}
        heading = await page.locator("#retention h2").inner_text()
        if database_url.startswith("sqlite"):
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        await browser.close()
    assert all(count > 0 for count in drawn.values()), drawn
    assert heading == "Retention per month" and errors == []

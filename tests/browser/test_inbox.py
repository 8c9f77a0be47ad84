"""The web inbox in Debian chromium: sign in, reply by email (to an aiosmtpd sink), note, assign, resolve,
live updates and collision notices in a second browser, and hostile HTML mail that runs nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, Page, async_playwright, expect

from hub import accounts
from hub.app import create_app
from hub.channels.email.parse import parse
from hub.core.calls import log_call
from hub.core.envelopes import Inbound
from hub.core.ingest import ingest_once
from hub.keys import RUNTIME
from hub.routing.complaints import open_complaint
from hub.runtime import Runtime
from hub.settings import load_settings
from hub.store.models import Conversation, Customer, Identity, Message
from hub.store.types import utcnow
from tests.support.builders import call, email, sms
from tests.support.services import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).parent.parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "correct-horse-9"
EVIL_MAIL = b"""From: Mallory <mallory@example.com>
To: reception@hotel.test
Subject: Special offer
Message-ID: <evil-1@example.com>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><body><p>Win a free night!</p><script>window.top.pwned = 'script'</script>
<img src="x" onerror="window.top.pwned = 'onerror'"><a href="javascript:window.top.pwned='link'">claim</a>
</body></html>
"""
RAW_EVIL_HTML = ('<p>raw</p><script>parent.pwned="raw-script"</script><img src=x onerror="parent.pwned=1">'
                 '<a id="js" href="javascript:parent.pwned=2">x</a>')


class Sink:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


@dataclass
class Served:
    url: str
    runtime: Runtime
    sink: Sink


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The real app on a free port in this loop, sending mail to an aiosmtpd sink."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", data_dir=tmp_path / "data",
                             redis_url=None, smtp_host="127.0.0.1", smtp_port=controller.port, smtp_tls="none",
                             smtp_from="reception@hotel.test", mail_domain="hotel.test")
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served(f"http://127.0.0.1:{port}", app[RUNTIME], sink)
    finally:
        await runner.cleanup()
        controller.stop()


async def seed(rt: Runtime) -> int:
    """Two agents and Giulia: an email with a quote, an SMS, a missed call and an open complaint."""
    async with rt.factory() as session, session.begin():
        for handle in ("marco", "sara"):
            await accounts.add_agent(session, f"{handle}@hotel.test", role="agent", name=handle.title(),
                                     password=PASSWORD)
    now = utcnow()
    mail = email("aria@example.com", "giulia@example.com", subject="Reclamo: aria condizionata",
                 body="L'aria condizionata della 312 non va.\n\n> On Mon, reception wrote:\n> Benvenuta!",
                 at=now - timedelta(hours=2))
    first = await ingest_once(rt.factory, replace(mail, visible_text="L'aria condizionata della 312 non va."),
                              rt.ingest_context)
    other = sms("SMother", "+393479998877", body="Arriviamo alle 22", at=now - timedelta(hours=1))
    await ingest_once(rt.factory, other, rt.ingest_context)
    async with rt.factory() as session, session.begin():
        customer = await session.get(Customer, first.customer_id)
        assert customer is not None
        customer.display_name, customer.lifecycle_stage, customer.tags = "Giulia Bianchi", "key", ["vip"]
        session.add(Identity(customer_id=customer.id or 0, kind="phone", value="+393471112233"))
        await session.flush()
        await log_call(session, call("CAgiulia", "+393471112233", at=now - timedelta(minutes=90),
                                     disposition="no-answer", duration=0), ())
        await open_complaint(session, customer_id=customer.id or 0, title="Aria condizionata rotta",
                             opened_by="rule:complaint words", severity="high",
                             conversation_id=first.conversation_id, sla_due_at=now + timedelta(hours=4))
    assert first.conversation_id is not None
    return first.conversation_id


async def sign_in(browser: Browser, url: str, who: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    page = await context.new_page()
    await page.goto(url + "/")
    await expect(page).to_have_url(url + "/login")
    await page.get_by_label("Email").fill(f"{who}@hotel.test")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".conversations")).to_be_visible()
    return page


async def conversation_row(rt: Runtime, conversation_id: int) -> Conversation:
    async with rt.factory() as session:
        row = await session.get(Conversation, conversation_id)
        assert row is not None
        return row


async def test_agents_work_a_conversation_together_live(served: Served) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    rt, url = served.runtime, served.url
    cid = await seed(rt)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        marco, sara = await sign_in(browser, url, "marco"), await sign_in(browser, url, "sara")
        await expect(marco.locator('[data-count="all"]')).to_have_text("2")
        await marco.screenshot(path=ARTIFACTS / "inbox.png")

        # Marco opens Giulia's conversation with j/k and Enter; Sara opens it too and starts typing.
        for key in ("j", "j", "k", "j"):  # the SMS is newer: Giulia's conversation is second
            await marco.keyboard.press(key)
        await marco.keyboard.press("Enter")
        await expect(marco).to_have_url(f"{url}/conversations/{cid}?view=all")
        await expect(marco.locator(".entry.flag")).to_contain_text("Aria condizionata rotta")
        await expect(marco.locator(".entry.call")).to_contain_text("no-answer")
        await expect(marco.locator(".entry.email .quote")).to_have_count(1)
        await sara.goto(f"{url}/conversations/{cid}")
        await expect(marco.locator("#presence")).to_contain_text("Sara is viewing")
        await sara.locator("#reply-body").fill("Sto")
        await sara.locator("#reply-body").press_sequentially("rispondendo")
        await expect(marco.locator("#presence")).to_contain_text("Sara is typing")

        # Reply by email: it reaches the SMTP sink through the outbox.
        await marco.keyboard.press("r")
        await marco.locator("#reply-channel").select_option("email")
        await marco.locator("#reply-body").fill("Gentile Giulia, il tecnico arriva alle 10.")
        await marco.locator("#send-reply").click()
        await expect(marco.locator("#timeline")).to_contain_text("il tecnico arriva alle 10")
        await wait_until(lambda: _received(served.sink), 30, "the reply at the SMTP sink", every=0.1)
        assert served.sink.envelopes[0].rcpt_tos == ["giulia@example.com"]
        assert b"il tecnico arriva alle 10" in served.sink.envelopes[0].content

        # A note, an assignment and a resolve (the `e` shortcut).
        await marco.keyboard.press("Escape")
        await marco.locator(".composer .tab[data-tab=note]").click()
        await marco.locator("#note-body").fill("@sara please check room 312")
        await marco.locator("#send-note").click()
        await expect(marco.locator(".entry.note")).to_contain_text("@sara please check room 312")
        await marco.locator("select[name=agent_id]").select_option(label="Sara")
        await marco.locator("form.assign button").click()
        await wait_until(lambda: _assigned_to(rt, cid, "sara@hotel.test"), 30, "the assignment", every=0.1)
        await marco.locator("#note-body").blur()
        await marco.keyboard.press("e")
        await wait_until(lambda: _status(rt, cid, "resolved"), 30, "the resolved status", every=0.1)
        await expect(marco.locator(".conv-head .status")).to_have_text("Resolved")
        await expect(sara.locator("#timeline")).to_contain_text("@sara please check room 312")  # live, no reload

        # Giulia writes again: Sara sees it appear without reloading; the conversation reopens.
        await ingest_once(rt.factory, email("again@example.com", "giulia@example.com",
                                            subject="Re: Reclamo: aria condizionata", body="Grazie, a dopo!",
                                            at=utcnow()), rt.ingest_context)
        await expect(sara.locator("#timeline")).to_contain_text("Grazie, a dopo!")
        await expect(sara.locator(".conv-head .status")).to_have_text("Open")
        await marco.screenshot(path=ARTIFACTS / "conversation.png")
        await browser.close()


async def test_hostile_html_mail_runs_no_script(served: Served) -> None:
    rt, url = served.runtime, served.url
    await seed(rt)
    item = parse(EVIL_MAIL, mailbox="reception@hotel.test")
    assert isinstance(item, Inbound)
    evil = await ingest_once(rt.factory, item, rt.ingest_context)
    raw = await ingest_once(rt.factory, email("raw@x", "mallory@example.com", subject="raw"), rt.ingest_context)
    async with rt.factory() as session, session.begin():
        # Defence in depth: even HTML that skipped the parser's sanitiser must stay inert.
        message = await session.get(Message, raw.message_id)
        assert message is not None
        message.body_html = RAW_EVIL_HTML
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = await sign_in(browser, url, "marco")
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(f"{url}/conversations/{evil.conversation_id}")
        for details in await page.locator("details.html").all():
            await details.locator("summary").click()
        frame_el = page.locator(f'iframe[title="email {evil.message_id}"]')
        await expect(frame_el).to_have_attribute("sandbox", "")
        frame = await (await frame_el.element_handle()).content_frame()
        assert frame is not None
        await frame.wait_for_load_state()
        await expect(frame.locator("body")).to_contain_text("Win a free night")
        await frame.locator("a").first.click()
        await page.goto(f"{url}/conversations/{raw.conversation_id}")
        for details in await page.locator("details.html").all():
            await details.locator("summary").click()
        raw_el = await page.locator(f'iframe[title="email {raw.message_id}"]').element_handle()
        raw_frame = await raw_el.content_frame()
        assert raw_frame is not None
        await expect(raw_frame.locator("body")).to_contain_text("raw")
        assert await raw_frame.locator("script, [onerror]").count() == 0
        await page.wait_for_timeout(500)
        assert await page.evaluate("window.pwned") is None
        assert dialogs == []
        await browser.close()


async def _received(sink: Sink) -> bool:
    return bool(sink.envelopes)


async def _assigned_to(rt: Runtime, cid: int, email_address: str) -> bool:
    row = await conversation_row(rt, cid)
    async with rt.factory() as session:
        agent = await accounts.agent_by_email(session, email_address)
    return agent is not None and row.assignee_id == agent.id


async def _status(rt: Runtime, cid: int, status: str) -> bool:
    return (await conversation_row(rt, cid)).status == status

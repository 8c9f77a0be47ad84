"""The web inbox over HTTP: login with CSRF, cookie sessions, CSP, escaping, sandboxed mail, i18n."""

from __future__ import annotations

import re

from sqlmodel import select

from hub.core.envelopes import Address, AddressKind, Channel, Inbound
from hub.store.models import Agent, AuditEvent, Message
from hub.web.i18n import STRINGS
from tests.support.builders import HOTEL_MAIL, T0
from tests.web.inbox_helpers import Client, ingest, rt, staff

EVIL_HTML = ('<p>Hello<script>window.top.pwned=1</script><img src=x onerror="window.top.pwned=2">'
             '<a href="javascript:window.top.pwned=3">click</a></p>')


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def login(client: Client, email: str = "agent@hotel.test") -> str:
    """Sign in through the form; returns the page's CSRF token."""
    page = await client.get("/login")
    assert page.status == 200
    form = {"csrf_token": csrf_of(await page.text()), "email": email, "password": "correct-horse-9"}
    response = await client.post("/login", data=form)
    assert response.status == 200 and response.url.path == "/"  # redirected to the inbox
    return csrf_of(await response.text())


def evil_mail(external_id: str = "evil@x") -> Inbound:
    return Inbound(channel=Channel.EMAIL, external_id=external_id,
                   sender=Address(AddressKind.EMAIL, "mallory@example.com"), recipient=HOTEL_MAIL,
                   received_at=T0, subject="<b>Offer</b>", body_text="<script>alert(1)</script> plain",
                   body_html=EVIL_HTML)


async def test_root_sends_strangers_to_the_login_page_with_a_csp(client: Client) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    page = await client.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"


async def test_login_needs_the_form_token_and_the_right_password(client: Client) -> None:
    await staff(client)
    page = await client.get("/login")
    token = csrf_of(await page.text())
    forged = await client.post("/login", data={"csrf_token": "forged", "email": "agent@hotel.test",
                                               "password": "correct-horse-9"})
    assert forged.status == 403
    wrong = await client.post("/login", data={"csrf_token": token, "email": "agent@hotel.test", "password": "nope"})
    assert wrong.status == 401 and "Wrong email or password" in await wrong.text()
    right = await client.post("/login", allow_redirects=False, data={
        "csrf_token": token, "email": "agent@hotel.test", "password": "correct-horse-9"})
    assert right.status == 303 and right.headers["Location"] == "/"
    cookie = right.cookies["hub_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"


async def test_cookie_sessions_need_the_csrf_header_for_api_writes(client: Client) -> None:
    await staff(client)
    conv = await ingest(client, evil_mail())
    csrf = await login(client)
    path = f"/api/v1/conversations/{conv.conversation_id}/notes"
    response = await client.post(path, json={"body": "no token"})
    assert response.status == 403 and (await response.json())["error"]["code"] == "csrf"
    response = await client.post(path, json={"body": "wrong"}, headers={"X-CSRF-Token": "0" * 40})
    assert response.status == 403
    response = await client.post(path, json={"body": "with token"}, headers={"X-CSRF-Token": csrf})
    assert response.status == 201
    assert (await client.get("/api/v1/me")).status == 200  # reads need no token


async def test_inbox_escapes_customer_text_and_sandboxes_html_mail(client: Client) -> None:
    await staff(client)
    conv = await ingest(client, evil_mail())
    await login(client)
    page = await client.get(f"/conversations/{conv.conversation_id}")
    html = await page.text()
    assert page.status == 200 and "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "&lt;b&gt;Offer&lt;/b&gt;" in html
    assert '<iframe sandbox=""' in html and "allow-scripts" not in html
    frame = await client.get(f"/ui/messages/{conv.message_id}/html")
    body = await frame.text()
    assert frame.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "<script" not in body and "onerror" not in body and "javascript:" not in body and "Hello" in body


async def test_partials_and_logout(client: Client) -> None:
    await staff(client)
    conv = await ingest(client, evil_mail())
    csrf = await login(client)
    listing = await client.get("/ui/list?view=all")
    assert listing.status == 200 and f'data-id="{conv.conversation_id}"' in await listing.text()
    panes = await client.get(f"/ui/conversations/{conv.conversation_id}")
    assert panes.status == 200 and 'id="timeline"' in await panes.text()
    assert (await client.get("/ui/conversations/999")).status == 404
    assert (await client.post("/logout", data={"csrf_token": "bad"})).status == 403
    out = await client.post("/logout", data={"csrf_token": csrf})
    assert out.url.path == "/login"
    assert (await client.get("/api/v1/me")).status == 401  # the session token is revoked
    async with rt(client).factory() as session:
        actions = list((await session.execute(select(AuditEvent.action).where(
            AuditEvent.action.in_(("agent.login", "agent.logout")))))  # type: ignore[attr-defined]
            .scalars())
    assert actions == ["agent.login", "agent.logout"]


async def test_italian_agents_get_italian_strings_and_marketers_no_inbox(client: Client) -> None:
    await staff(client)
    async with rt(client).factory() as session, session.begin():
        agent = (await session.execute(select(Agent).where(Agent.email == "agent@hotel.test"))).scalar_one()
        agent.language = "it"
    await login(client)
    html = await (await client.get("/")).text()
    assert "Non assegnate" in html and 'lang="it"' in html
    client.session.cookie_jar.clear()
    await login(client, "marketer@hotel.test")
    html = await (await client.get("/")).text()
    assert "service staff only" in html and 'class="conversations"' not in html


def test_both_languages_have_every_string() -> None:
    assert set(STRINGS["en"]) == set(STRINGS["it"])


async def test_message_html_is_only_for_those_who_see_the_conversation(client: Client) -> None:
    await staff(client)
    conv = await ingest(client, evil_mail())
    assert (await client.get(f"/ui/messages/{conv.message_id}/html", allow_redirects=False)).status == 303
    await login(client)
    async with rt(client).factory() as session:
        plain = (await session.execute(select(Message).where(Message.id == conv.message_id))).scalar_one()
    assert plain.body_html
    assert (await client.get("/ui/messages/999/html")).status == 404

"""Hardening over HTTP: login lock-out, session expiry and revocation, headers, body limits, redacted logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from hub import accounts
from hub.app import create_app
from hub.keys import RUNTIME
from hub.ops.context import traced
from hub.ops.logging import configure
from hub.settings import Settings, load_settings
from hub.store.models import ApiToken
from hub.store.types import utcnow
from tests.conftest import make_agent

Client = TestClient[web.Request, web.Application]
LOGIN = "/api/v1/auth/login"
PASSWORD = "correct-horse-9"


def _settings(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                         login_max_failures=3, login_ip_max_failures=5, **extra)


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(_settings(database_url, tmp_path)))) as test_client:
        yield test_client


async def login(client: Client, email: str, password: str) -> tuple[int, Any]:
    response = await client.post(LOGIN, json={"email": email, "password": password})
    return response.status, await response.json()


async def test_an_account_is_locked_after_repeated_failures_even_for_the_right_password(client: Client) -> None:
    await make_agent(client.app[RUNTIME], "ada@hotel.test", "agent")
    assert [await login(client, "ada@hotel.test", f"wrong-{n}") for n in range(3)][-1][0] == 401
    status, body = await login(client, "ada@hotel.test", PASSWORD)
    assert status == 429 and body["error"]["code"] == "locked_out" and body["error"]["retry_after"] > 0


async def test_one_address_guessing_many_accounts_is_locked_out(client: Client) -> None:
    rt = client.app[RUNTIME]
    await make_agent(rt, "bob@hotel.test", "agent")
    for n in range(5):  # five different accounts, once each: only the per-IP count trips
        assert (await login(client, f"nobody{n}@hotel.test", "whatever-1"))[0] == 401
    assert (await login(client, "bob@hotel.test", PASSWORD))[0] == 429


async def test_a_good_login_clears_the_account_count(client: Client) -> None:
    await make_agent(client.app[RUNTIME], "cy@hotel.test", "agent")
    for _ in range(2):
        assert (await login(client, "cy@hotel.test", "wrong-pass-1"))[0] == 401
    assert (await login(client, "cy@hotel.test", PASSWORD))[0] == 200
    for _ in range(2):
        assert (await login(client, "cy@hotel.test", "wrong-pass-1"))[0] == 401
    assert (await login(client, "cy@hotel.test", PASSWORD))[0] == 200


async def test_login_sessions_expire_and_can_be_revoked(client: Client) -> None:
    rt = client.app[RUNTIME]
    _, admin = await make_agent(rt, "root@hotel.test", "admin")
    agent_id, _ = await make_agent(rt, "dee@hotel.test", "agent")
    status, body = await login(client, "dee@hotel.test", PASSWORD)
    token = body["token"]

    async def me(t: str) -> int:
        return (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {t}"})).status

    assert status == 200 and await me(token) == 200
    async with rt.factory() as session, session.begin():
        await session.execute(update(ApiToken).where(ApiToken.token_hash == accounts.token_hash(token))  # type: ignore[arg-type]
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await me(token) == 401  # expired
    token = (await login(client, "dee@hotel.test", PASSWORD))[1]["token"]
    assert (await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})).status == 200
    assert await me(token) == 401  # revoked by its owner
    token = (await login(client, "dee@hotel.test", PASSWORD))[1]["token"]
    revoke = await client.post(f"/api/v1/agents/{agent_id}/sessions/revoke",
                               headers={"Authorization": f"Bearer {admin}"})
    assert revoke.status == 200 and (await revoke.json())["revoked"] >= 2
    assert await me(token) == 401  # revoked by an admin


def test_password_policy() -> None:
    for weak in ("short1", "onlyletterslong", "12345678901"):
        with pytest.raises(accounts.AccountError):
            accounts.check_password_policy(weak)
    accounts.check_password_policy("correct-horse-9")


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/me", "/login", "/nowhere", "/metrics", "/webhooks/twilio/sms"])
async def test_security_headers_on_every_response(client: Client, path: str) -> None:
    response = await client.get(path)
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"]
    assert headers.get("X-Frame-Options") == "DENY" or "frame-ancestors" in headers["Content-Security-Policy"]
    assert len(headers.getall("Content-Security-Policy", [])) <= 1  # never twice; CSP is security.py's
    assert "Strict-Transport-Security" not in headers  # plain http deployment
    assert headers["X-Request-ID"]


async def test_hsts_when_the_public_url_is_https(database_url: str, tmp_path: Path) -> None:
    settings = _settings(database_url, tmp_path, public_url="https://crm.hotel.test")
    async with TestClient(TestServer(create_app(settings))) as client:
        assert "max-age=" in (await client.get("/healthz")).headers["Strict-Transport-Security"]


async def test_unauthenticated_bodies_over_the_limit_are_refused(client: Client) -> None:
    big = b"x" * (300 * 1024)
    for path in (LOGIN, "/webhooks/twilio/sms", "/webhooks/twilio/voice"):
        response = await client.post(path, data=big, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status == 413, path

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(40):
            yield b"y" * 10240

    response = await client.post(LOGIN, data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413


def test_logs_are_json_with_the_trace_id_and_no_secrets(tmp_path: Path) -> None:
    settings = load_settings(database_url="postgresql://hub:Pg-Pass-77@db.internal/hub", data_dir=tmp_path,
                             smtp_password="Smtp-Secret-42", twilio_auth_token="tw-token-abcdef", log_format="json")
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure(settings, stream=stream)
        log = logging.getLogger("hub.test")
        with traced("trace-123"):
            log.info("connecting with %s to %s", "Smtp-Secret-42", settings.database_url)
            log.warning("request headers: %s", {"Authorization": "Bearer hub_abcdefghijklmnopqrstuvwxyz012345"})
            try:
                raise RuntimeError("twilio said no to tw-token-abcdef")
            except RuntimeError:
                log.exception("send failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    assert len(lines) == 3 and all(line["trace_id"] == "trace-123" for line in lines)
    for secret in ("Smtp-Secret-42", "Pg-Pass-77", "tw-token-abcdef", "hub_abcdefghijklmnopqrstuvwxyz012345"):
        assert secret not in text, secret
    assert lines[0]["level"] == "info" and "[redacted]" in lines[0]["event"] and "exception" in lines[2]

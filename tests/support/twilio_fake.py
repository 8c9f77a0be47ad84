"""A local aiohttp server speaking Twilio's Messages API JSON, the `twilio` fixture, signed webhook helpers.

Twilio's cloud is the only thing replaced in the tests; everything else is the real code. The
fixture is registered for the whole suite by `pytest_plugins` in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from hub.settings import Settings, load_settings

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"
PUBLIC_URL = "https://hub.example.test"
HUB_NUMBER = "+390612345678"

# (HTTP status, Twilio code, message) as Twilio answers them
OPTED_OUT = (400, 21610, "Attempt to send to unsubscribed recipient")
INVALID = (400, 21211, "The 'To' number +39000 is not a valid phone number.")
TOO_MANY = (429, 20429, "Too Many Requests")
BROKEN = (500, 20500, "Internal Server Error")


@dataclass
class FakeTwilio:
    """Records every Messages.json request; `answers[to]` lists errors to give before succeeding.

    While `gate` is cleared, requests are recorded but not answered (a slow provider), so a test
    can act while sends are in flight.
    """

    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    answers: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def to(self, number: str) -> list[dict[str, str]]:
        return [r for r in self.requests if r["To"].removeprefix("whatsapp:") == number]

    async def messages(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        await self.gate.wait()
        queued = self.answers.get(form["To"].removeprefix("whatsapp:"))
        if queued:
            status, code, text = queued.pop(0)
            more = f"https://www.twilio.com/docs/errors/{code}"
            return web.json_response({"code": code, "message": text, "status": status, "more_info": more},
                                     status=status)
        sid = f"SM{len(self.requests):032x}"
        return web.json_response({
            "sid": sid, "account_sid": request.match_info["sid"], "status": "queued", "to": form["To"],
            "from": form["From"], "body": form.get("Body", ""), "num_segments": "1", "num_media": "0",
            "error_code": None, "error_message": None, "direction": "outbound-api",
            "api_version": "2010-04-01", "date_created": "Thu, 01 Jan 2026 09:00:00 +0000",
            "uri": f"/2010-04-01/Accounts/x/Messages/{sid}.json",
        }, status=201)


@asynccontextmanager
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    """Serve the fake on a free local port for the duration of the block."""
    fake = FakeTwilio()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", fake.messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    """The fake Twilio on a free local port."""
    async with fake_twilio() as fake:
        yield fake


def sms_settings(database_url: str, tmp_path: Path, fake: FakeTwilio, **extra: Any) -> Settings:
    """Embedded-mode settings (no Redis) whose SMS sender talks to the fake and trusts its signatures."""
    values: dict[str, Any] = {"database_url": database_url, "data_dir": tmp_path / "data", "redis_url": None,
                              "mail_domain": "hub.test", **twilio_settings(fake.url), **extra}
    return load_settings(**values)


def twilio_env(base_url: str) -> dict[str, str]:
    """The same settings as HUB_* environment variables, for `hub worker` processes and the CLI."""
    return {f"HUB_{k.upper()}": str(v) for k, v in twilio_settings(base_url).items() if v is not None}


def twilio_settings(base_url: str = "") -> dict[str, Any]:
    """Settings overrides that make the hub talk to (and trust) the fake Twilio."""
    return {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN, "public_url": PUBLIC_URL,
            "twilio_base_url": base_url or None, "twilio_from": HUB_NUMBER}


def sign(
    path: str, params: Mapping[str, str], *, token: str = AUTH_TOKEN, base: str = PUBLIC_URL
) -> dict[str, str]:
    """The X-Twilio-Signature header Twilio would send for this form posted to base + path."""
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(base + path, dict(params))}


def status_form(sid: str, status: str, to: str, *, code: str | None = None, text: str = "") -> dict[str, str]:
    """A message status callback form as Twilio posts it."""
    form = {"MessageSid": sid, "MessageStatus": status, "To": to, "From": HUB_NUMBER, "AccountSid": ACCOUNT_SID}
    if code:
        form.update(ErrorCode=code, ErrorMessage=text)
    return form


def sms_form(sid: str, body: str = "Ciao", *, sender: str = "+393471112233", to: str = HUB_NUMBER,
             **extra: str) -> dict[str, str]:
    """An incoming-message webhook form as Twilio posts it."""
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": sender, "To": to,
            "Body": body, "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01", **extra}

"""Replies through the outbox and the SMTP sender to an aiosmtpd sink; the customer's answer comes back by IMAP."""

from __future__ import annotations

import asyncio
import email
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.channels.email.inbound import EmailOutcome, ingest_raw
from hub.channels.email.poller import poll_once
from hub.channels.email.smtp import SmtpConfig, SmtpSender
from hub.channels.email.wiring import SENDER_KEY, smtp_config
from hub.core.envelopes import Address, AddressKind, Channel, Outbound
from hub.keys import RUNTIME
from hub.store.models import Conversation, Message, OutboxItem, Suppression
from tests.conftest import make_agent
from tests.integration.email.conftest import HOTEL, mailbox
from tests.support.dovecot import Dovecot
from tests.support.services import free_port
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import wait_until

GUEST = "giulia@example.com"
FIRST = (f"From: Giulia Rossi <{GUEST}>\r\nTo: {HOTEL}\r\nSubject: Late check-in\r\n"
         "Message-ID: <first@guest.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\n"
         "Can I arrive at midnight?\r\n").encode()


async def _setup(client: TestClient) -> tuple[hub_runtime.Runtime, int, dict[str, str]]:  # type: ignore[type-arg]
    rt = client.app[RUNTIME]
    result = await ingest_raw(rt, FIRST, mailbox=HOTEL, source="test")
    assert result.outcome is EmailOutcome.STORED and result.ingest is not None
    assert result.ingest.conversation_id is not None
    _, token = await make_agent(rt, "anna@hotel.test", "agent")
    return rt, result.ingest.conversation_id, {"Authorization": f"Bearer {token}"}


async def _reply(client: TestClient, conversation_id: int, headers: dict[str, str],  # type: ignore[type-arg]
                 body: str = "Of course, the night porter will wait for you.") -> dict[str, Any]:
    response = await client.post(f"/api/v1/conversations/{conversation_id}/reply", json={"body": body},
                                 headers=headers)
    assert response.status == 202, await response.text()
    data: dict[str, Any] = await response.json()
    return data


async def _message(rt: hub_runtime.Runtime, message_id: int) -> Message:
    async with rt.factory() as session:
        found = await session.get(Message, message_id)
        assert found is not None
        return found


async def _outbox_is(rt: hub_runtime.Runtime, status: str) -> bool:
    """The message's delivery status is written before its outbox row is finished: wait for both."""
    async with rt.factory() as session:
        return (await session.execute(select(OutboxItem))).scalars().one().status == status


async def _delivery_is(rt: hub_runtime.Runtime, message_id: int, *states: str) -> bool:
    return (await _message(rt, message_id)).delivery_status in states


@pytest.mark.imap
async def test_reply_threads_and_the_customer_answer_lands_in_the_same_conversation(
    client: TestClient, smtp: SmtpSink, dovecot: Dovecot  # type: ignore[type-arg]
) -> None:
    rt, conversation_id, auth = await _setup(client)
    sent = await _reply(client, conversation_id, auth)
    await wait_until(lambda: _delivery_is(rt, sent["id"], "sent"), 5, "the reply to be sent")
    row = await _message(rt, sent["id"])
    assert row.delivery_detail and row.delivery_detail.startswith("250")
    [raw] = smtp.sink.messages_to(GUEST)
    out = email.message_from_bytes(raw, policy=policy.default)
    async with rt.factory() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
    assert out["Message-ID"] == f"<{row.external_id}>"
    assert out["In-Reply-To"] == "<first@guest.example>"
    assert "<first@guest.example>" in out["References"]
    assert out["Reply-To"].addresses[0].addr_spec == f"reception+{conversation.thread_token}@hub.test"
    assert out["Subject"] == "Re: Late check-in" and out["From"].addresses[0].addr_spec == HOTEL

    answer = EmailMessage()  # what Thunderbird sends: to the Reply-To, threading headers, a new subject
    answer["From"], answer["To"], answer["Subject"] = GUEST, str(out["Reply-To"]), "one more thing"
    answer["Message-ID"], answer["In-Reply-To"] = "<answer@guest.example>", out["Message-ID"]
    answer["References"] = f"{out['References']} {out['Message-ID']}"
    answer.set_content("Thanks! And breakfast?\n\n> Of course, the night porter will wait for you.\n")
    await dovecot.append(answer.as_bytes())
    assert (await poll_once(rt, [mailbox(dovecot)]))[mailbox(dovecot).key] == {"stored": 1}
    async with rt.factory() as session:
        found = await session.execute(select(Message).where(col(Message.external_id) == "answer@guest.example"))
        reply_in = found.scalar_one()
    assert reply_in.conversation_id == conversation_id and reply_in.visible_text == "Thanks! And breakfast?"

    dsn = _bounce(str(row.external_id))  # then the guest's server bounces a later copy: hard bounce
    await dovecot.append(dsn)
    assert (await poll_once(rt, [mailbox(dovecot)]))[mailbox(dovecot).key] == {"bounce": 1}
    assert (await _message(rt, sent["id"])).delivery_status == "bounced"
    async with rt.factory() as session:
        suppressed = await session.execute(select(Suppression).where(col(Suppression.address) == GUEST))
        assert suppressed.scalar_one().reason == "hard_bounce"


def _bounce(original_id: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.com\r\nTo: {HOTEL}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn1@mx.example.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {GUEST}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{original_id}>\r\n--B--\r\n"
    ).encode()


async def test_5xx_marks_the_message_failed_with_the_reason(
    client: TestClient, smtp: SmtpSink  # type: ignore[type-arg]
) -> None:
    smtp.sink.fail[GUEST] = ("550 5.1.1 <giulia@example.com>: Recipient address rejected", 99)
    rt, conversation_id, auth = await _setup(client)
    sent = await _reply(client, conversation_id, auth)
    await wait_until(lambda: _delivery_is(rt, sent["id"], "failed"), 5, "the failure")
    await wait_until(lambda: _outbox_is(rt, "failed"), 5, "the outbox row")
    row = await _message(rt, sent["id"])
    assert row.delivery_detail is not None and "550 5.1.1" in row.delivery_detail
    assert "Recipient address rejected" in row.delivery_detail
    async with rt.factory() as session:
        item = (await session.execute(select(OutboxItem))).scalars().one()
    assert (item.status, item.attempt) == ("failed", 1) and smtp.sink.attempts[GUEST] == 1


async def test_4xx_is_retried_with_backoff_then_sent(
    client: TestClient, smtp: SmtpSink  # type: ignore[type-arg]
) -> None:
    smtp.sink.fail[GUEST] = ("451 4.7.1 Greylisted, try again later", 2)
    rt, conversation_id, auth = await _setup(client)
    await rt.extras[SENDER_KEY].aclose()  # a sender whose retry delay suits a test
    rt.jobs.senders = {**rt.jobs.senders, "email": SmtpSender(smtp_config(rt.settings, retry_after=0.2))}
    sent = await _reply(client, conversation_id, auth)
    await wait_until(lambda: _delivery_is(rt, sent["id"], "sent"), 10, "the third attempt")
    await wait_until(lambda: _outbox_is(rt, "done"), 5, "the outbox row")
    async with rt.factory() as session:
        item = (await session.execute(select(OutboxItem))).scalars().one()
    assert (item.status, item.attempt) == ("done", 3) and smtp.sink.attempts[GUEST] == 3
    assert len(smtp.sink.messages_to(GUEST)) == 1
    await rt.jobs.senders["email"].aclose()  # type: ignore[attr-defined]


def _outbound(n: int, to: str = GUEST, subject: str = "Your booking") -> Outbound:
    return Outbound(channel=Channel.EMAIL, message_id=n, sender=Address(AddressKind.EMAIL, HOTEL, "Hotel Aurora"),
                    recipient=Address(AddressKind.EMAIL, to), body_text=f"Message {n}", subject=subject,
                    external_id=f"out{n}@hub.test", meta={"thread_token": "abc123"})


async def test_pool_reuses_connections_and_reconnects_after_the_server_drops_them() -> None:
    with SmtpSink(idle_timeout=0.5) as smtp:
        sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=smtp.port, pool_size=3, mail_domain="hub.test"))
        try:
            results = await asyncio.gather(*(sender.send(_outbound(n)) for n in range(30)))
            assert all(r.ok and r.detail.startswith("250") for r in results)
            assert sender.pool.connects <= 3 and len(smtp.sink.envelopes) == 30
            await asyncio.sleep(1.0)  # the server times the idle pooled sessions out
            again = await sender.send(_outbound(99))
            assert again.ok and again.provider_id == "out99@hub.test" and len(smtp.sink.envelopes) == 31
            assert sender.pool.connects > 3
        finally:
            await sender.aclose()


async def test_header_injection_is_refused_before_anything_is_sent(smtp: SmtpSink) -> None:
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=smtp.port, mail_domain="hub.test"))
    try:
        result = await sender.send(_outbound(1, subject="Hi\r\nBcc: everyone@example.com"))
        assert not result.ok and result.permanent and "Subject" in result.detail
        assert smtp.sink.envelopes == []
    finally:
        await sender.aclose()


async def test_a_refused_recipient_leaves_the_pooled_connection_usable(smtp: SmtpSink) -> None:
    smtp.sink.fail["nobody@example.com"] = ("550 5.1.1 No such user", 1)
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=smtp.port, pool_size=1, mail_domain="hub.test"))
    try:
        refused = await sender.send(_outbound(1, to="nobody@example.com"))
        accepted = await sender.send(_outbound(2))
        assert (refused.ok, refused.permanent, refused.code) == (False, True, "550")
        assert "No such user" in refused.detail
        assert accepted.ok and sender.pool.connects == 1  # RSET after the refusal, same session
        envelope = smtp.sink.envelopes[0]
        assert envelope.rcpt_tos == [GUEST] and envelope.mail_from == HOTEL
        assert f"SIZE={len(envelope.original_content)}" in envelope.mail_options
    finally:
        await sender.aclose()


async def test_send_many_runs_messages_over_the_pooled_connections_with_results_in_order(smtp: SmtpSink) -> None:
    smtp.sink.fail["nobody@example.com"] = ("550 5.1.1 No such user", 1)
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=smtp.port, pool_size=3, mail_domain="hub.test"))
    items = [_outbound(n) for n in range(30)]
    items[7] = _outbound(7, to="nobody@example.com")
    items[12] = _outbound(12, subject="Hi\r\nBcc: everyone@example.com")
    try:
        results = await sender.send_many(items)
    finally:
        await sender.aclose()
    assert [r.provider_id for r in results if r.ok] == [f"out{n}@hub.test" for n in range(30) if n not in (7, 12)]
    assert (results[7].ok, results[7].permanent, results[7].code) == (False, True, "550")
    assert (results[12].ok, results[12].permanent, results[12].code) == (False, True, "compose")
    assert sender.pool.connects <= 3
    delivered = sorted(int(e.original_content.split(b"Message ")[-1].split()[0]) for e in smtp.sink.envelopes)
    assert delivered == [n for n in range(30) if n not in (7, 12)]  # each once


async def test_send_many_takes_a_fresh_connection_when_the_server_dropped_the_pooled_one() -> None:
    with SmtpSink(idle_timeout=0.5) as smtp:
        sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=smtp.port, pool_size=2, mail_domain="hub.test"))
        try:
            first = await sender.send_many([_outbound(n) for n in range(6)])
            await asyncio.sleep(1.0)  # the server times the idle pooled sessions out
            again = await sender.send_many([_outbound(n) for n in range(6, 12)])
        finally:
            await sender.aclose()
        assert all(r.ok for r in [*first, *again])
        assert len(smtp.sink.envelopes) == 12 and sender.pool.connects > 2


async def test_send_many_to_an_unreachable_server_fails_the_run_for_a_later_retry() -> None:
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=free_port(), pool_size=2, mail_domain="hub.test"))
    tries = 0
    connect = sender.pool._connect

    async def counted() -> Any:
        nonlocal tries
        tries += 1
        return await connect()

    sender.pool._connect = counted  # type: ignore[method-assign]
    results = await sender.send_many([_outbound(n) for n in range(40)])
    assert len(results) == 40
    assert all(not r.ok and not r.permanent and r.code == "connection" for r in results)
    assert tries <= 6  # each lane tries, then its one retry: not three tries per message


async def test_a_server_that_stalls_past_the_timeout_loses_the_connection_not_the_message(smtp: SmtpSink) -> None:
    smtp.sink.stall = 0.6
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=smtp.port, pool_size=1, timeout=0.2,
                                   mail_domain="hub.test"))
    try:
        [stalled] = await sender.send_many([_outbound(1)])
        assert (stalled.ok, stalled.permanent, stalled.code) == (False, False, "connection")  # retried later
        smtp.sink.stall = 0.0
        [after] = await sender.send_many([_outbound(2)])
        assert after.ok
    finally:
        await sender.aclose()

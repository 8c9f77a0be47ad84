"""Raw mail through ingest_raw and `hub ingest email`: outcomes, flags, the loop guard, files of every kind."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from hub import runtime as hub_runtime
from hub.channels.email.inbound import EmailOutcome, ingest_raw
from hub.channels.email.loopguard import may_auto_reply
from hub.core.envelopes import Flag
from hub.store.models import Message, QuarantineItem
from tests.integration.email.conftest import HOTEL


def _mail(n: int, *, sender: str = "giulia@example.com", headers: str = "", subject: str = "Towels") -> bytes:
    return (f"From: {sender}\r\nTo: {HOTEL}\r\nSubject: {subject}\r\nMessage-ID: <i{n}@example.com>\r\n"
            f"{headers}\r\nPlease bring towels ({n}).\r\n").encode()


async def test_auto_replies_own_mail_and_garbage(runtime: hub_runtime.Runtime) -> None:
    ooo = await ingest_raw(runtime, _mail(1, headers="Auto-Submitted: auto-replied\r\n",
                                          subject="Out of office"), mailbox=HOTEL, source="t")
    own = await ingest_raw(runtime, _mail(2, sender="reception+abc@hub.test"), mailbox=HOTEL, source="t")
    person = await ingest_raw(runtime, _mail(3), mailbox=HOTEL, source="t")
    again = await ingest_raw(runtime, _mail(3), mailbox=HOTEL, source="t")
    junk = await ingest_raw(runtime, b"\x00garbage without headers", mailbox=HOTEL, source="t")
    assert [r.outcome for r in (ooo, own, person, again, junk)] == [
        EmailOutcome.AUTOREPLY, EmailOutcome.STORED, EmailOutcome.STORED, EmailOutcome.DUPLICATE,
        EmailOutcome.QUARANTINED]
    async with runtime.factory() as session:
        flags = {m.external_id: set(m.flags) for m in (await session.execute(select(Message))).scalars()}
        kept = (await session.execute(select(QuarantineItem))).scalars().one()
        assert not await may_auto_reply(session, "giulia@example.com", flags["i1@example.com"], cap_per_hour=3)
        assert not await may_auto_reply(session, "reception+abc@hub.test", flags["i2@example.com"], cap_per_hour=3)
        assert await may_auto_reply(session, "giulia@example.com", flags["i3@example.com"], cap_per_hour=3)
        assert not await may_auto_reply(session, "giulia@example.com", set(), cap_per_hour=0)
    assert Flag.AUTOREPLY.value in flags["i1@example.com"] and Flag.OWN_MAIL.value in flags["i2@example.com"]
    assert kept.raw == b"\x00garbage without headers" and kept.stage == "email.parse"


def _hub(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "HUB_DATA_DIR": str(tmp_path),
           "HUB_SMTP_FROM": HOTEL}
    env.pop("HUB_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "hub", "ingest", "email", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_ingests_eml_mbox_and_maildir_with_json(tmp_path: Path) -> None:
    (tmp_path / "one.eml").write_bytes(_mail(1))
    box = mailbox.mbox(tmp_path / "archive.mbox")
    for n in (2, 3):
        box.add(_mail(n))
    box.add(b"From: nobody\r\n\r\nno address at all\r\n")
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(_mail(4, headers="Precedence: bulk\r\nList-Id: <news.example.com>\r\n"))
    maildir.add(_mail(1))
    paths = ("one.eml", "archive.mbox", "Maildir")

    dry = _hub(tmp_path, "--json", "--dry-run", *paths)
    assert dry.returncode == 0, dry.stderr
    assert [json.loads(line)["outcome"] for line in dry.stdout.splitlines()] == [
        "stored", "stored", "stored", "quarantined", "autoreply", "stored"]
    assert not (tmp_path / "hub.db").exists()

    real = _hub(tmp_path, "--json", *paths)
    assert real.returncode == 0, real.stderr
    rows = [json.loads(line) for line in real.stdout.splitlines()]
    assert [r["outcome"] for r in rows] == ["stored", "stored", "stored", "quarantined", "autoreply", "duplicate"]
    first = rows[0]
    assert set(first) >= {"source", "outcome", "customer_id", "conversation_id", "message_id", "from", "subject",
                          "text", "attachments", "flags"}
    assert (first["source"], first["from"], first["subject"]) == ("one.eml", "giulia@example.com", "Towels")
    assert first["text"] == "Please bring towels (1)." and rows[5]["message_id"] == first["message_id"]
    assert rows[1]["source"].endswith("archive.mbox#1") and rows[4]["flags"] == ["bulk"]
    assert "ingesting mail" in real.stderr and "1 quarantined" in real.stderr

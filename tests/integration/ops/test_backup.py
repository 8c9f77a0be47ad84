"""`hub backup` while the hub writes, then `hub restore`: SQLite (online backup API) and PostgreSQL (pg_dump)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from hub import runtime as hub_runtime
from hub.core.envelopes import AttachmentRef
from hub.core.ingest import ingest_once
from hub.ops import backup
from hub.settings import Settings
from hub.store.models import Message
from tests.support.builders import email

PDF = b"%PDF-1.4 invoice 2026-11"


async def _bodies(settings: Settings) -> list[str]:
    async with hub_runtime.running(settings, workers=False) as rt, rt.factory() as session:
        return list((await session.execute(select(col(Message.body_text)).order_by(col(Message.id)))).scalars())


async def test_backup_while_running_then_restore(settings: Settings, tmp_path: Path) -> None:
    dest = tmp_path / "hub-backup.tar.gz"
    async with hub_runtime.running(settings) as rt:
        first = replace(email("<b1@example.com>", body="before the backup"),
                        attachments=(AttachmentRef("invoice.pdf", "application/pdf", len(PDF), None, PDF),))
        await ingest_once(rt.factory, first, rt.ingest_context)
        info = backup.backup(settings, dest)  # the runtime holds open connections meanwhile
        await ingest_once(rt.factory, email("<b2@example.com>", body="after the backup"), rt.ingest_context)
        async with rt.factory() as session:
            assert (await session.execute(select(func.count()).select_from(Message))).scalar_one() == 2
    assert info.blobs == 1 and info.bytes > 0
    with tarfile.open(dest) as tar:
        assert {"manifest.json", "hub.db" if settings.is_sqlite else "hub.pgdump"} <= set(tar.getnames())
    shutil.rmtree(settings.data_dir / "blobs")

    manifest = backup.restore(settings, dest)

    assert manifest["dialect"] == ("sqlite" if settings.is_sqlite else "postgresql")
    assert await _bodies(settings) == ["before the backup"]
    assert [p.read_bytes() for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()] == [PDF]


async def test_restore_refuses_a_foreign_or_tampered_archive(settings: Settings, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../escape")
    with pytest.raises(backup.BackupError, match="refusing"):
        backup.restore(settings, evil)
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        tar.add(payload, arcname="hub.db")
    with pytest.raises(backup.BackupError, match="manifest"):
        backup.restore(settings, plain)


@pytest.mark.slow
async def test_cli_backup_restore_and_status(settings: Settings, tmp_path: Path) -> None:
    async with hub_runtime.running(settings) as rt:
        await ingest_once(rt.factory, email("<c1@example.com>", body="kept"), rt.ingest_context)
    env = {**os.environ, "HUB_DATABASE_URL": settings.database_url, "HUB_DATA_DIR": str(settings.data_dir),
           "HUB_LOG_FORMAT": "text"}
    env.pop("HUB_REDIS_URL", None)

    def hub(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "hub", *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "backup written" in hub("backup", str(tmp_path / "b.tar.gz"))
    assert "restored backup" in hub("restore", "--yes", str(tmp_path / "b.tar.gz"))
    out = hub("status")
    assert "workers: in-process" in out and "stuck outbox items (running too long): 0" in out

"""`hub backup` / `hub restore`: one .tar.gz holding the database and the attachment blobs.

SQLite is copied with its online backup API (a consistent snapshot while `hub serve` keeps
writing); PostgreSQL with `pg_dump --format=custom` (consistent by MVCC) and restored with
`pg_restore --clean`. Blobs are content-addressed files, so restoring them only adds files.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hub import __version__
from hub.settings import Settings
from hub.store.types import utcnow

MANIFEST = "manifest.json"
SQLITE_NAME = "hub.db"
PG_NAME = "hub.pgdump"


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    database: str
    blobs: int
    bytes: int


def sqlite_path(settings: Settings) -> Path:
    """The database file of an sqlite+aiosqlite:///... URL."""
    return Path(settings.database_url.split(":///", 1)[1])


def libpq_url(settings: Settings) -> str:
    """The URL pg_dump understands (no SQLAlchemy driver suffix)."""
    parts = urlsplit(settings.database_url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))


def sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: pages copied under a read lock, consistent even while others write."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst, pages=1024)
    finally:
        dst.close()
        src.close()


def _pg(tool: str, *args: str) -> None:
    exe = shutil.which(tool)
    if exe is None:
        raise BackupError(f"{tool} not found: install the PostgreSQL client tools matching the server version")
    done = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[:500]}")


def _dump(settings: Settings, work: Path) -> str:
    if settings.is_sqlite:
        sqlite_copy(sqlite_path(settings), work / SQLITE_NAME)
        return SQLITE_NAME
    _pg("pg_dump", "--format=custom", "--no-owner", "--file", str(work / PG_NAME), libpq_url(settings))
    return PG_NAME


def backup(settings: Settings, dest: Path) -> BackupInfo:
    """Write the database snapshot, the blobs and a manifest to `dest` (.tar.gz)."""
    blobs = settings.data_dir / "blobs"
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        work = Path(tmp)
        name = _dump(settings, work)
        count = sum(1 for p in blobs.rglob("*") if p.is_file()) if blobs.is_dir() else 0
        manifest = {"format": "hub-backup", "version": 1, "hub": __version__, "created_at": utcnow().isoformat(),
                    "database": name, "dialect": "sqlite" if settings.is_sqlite else "postgresql", "blobs": count}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        partial = dest.with_name(dest.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(work / MANIFEST, arcname=MANIFEST)
            tar.add(work / name, arcname=name)
            if blobs.is_dir():
                tar.add(blobs, arcname="blobs")
        os.replace(partial, dest)  # a crash never leaves a half-written backup under the real name
    return BackupInfo(dest, str(manifest["dialect"]), count, dest.stat().st_size)


def _read_manifest(work: Path) -> dict[str, object]:
    path = work / MANIFEST
    if not path.exists():
        raise BackupError("not a hub backup: manifest.json is missing")
    manifest: dict[str, object] = json.loads(path.read_text())
    if manifest.get("format") != "hub-backup":
        raise BackupError("not a hub backup: unknown format")
    return manifest


def _restore_database(settings: Settings, work: Path, manifest: dict[str, object]) -> None:
    dialect = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest.get("dialect") != dialect:
        raise BackupError(f"this backup holds a {manifest.get('dialect')} database; HUB_DATABASE_URL is {dialect}")
    if settings.is_sqlite:
        target = sqlite_path(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Backing up *into* the live file replaces its pages in one go and leaves WAL state consistent.
        src = sqlite3.connect(work / SQLITE_NAME)
        dst = sqlite3.connect(target)
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
            src.close()
        return
    _pg("pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
        "--dbname", libpq_url(settings), str(work / PG_NAME))


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    # Refuse absolute paths and `..`: a tampered archive must not write outside the work directory.
    members = tar.getmembers()
    for m in members:
        if m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir()):
            raise BackupError(f"refusing archive member {m.name!r}")
    return members


def restore(settings: Settings, source: Path) -> dict[str, object]:
    """Put a backup back: the database replaced, blobs added. Stop `hub serve` and `hub worker` first."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(source, "r:gz") as tar:
        work = Path(tmp)
        tar.extractall(work, members=_safe_members(tar), filter="data")
        manifest = _read_manifest(work)
        _restore_database(settings, work, manifest)
        blobs = work / "blobs"
        if blobs.is_dir():
            shutil.copytree(blobs, settings.data_dir / "blobs", dirs_exist_ok=True)
    return manifest

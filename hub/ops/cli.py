"""`hub status`, `hub backup`, `hub restore`, `hub privacy ...` and `hub sessions revoke`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy import update
from sqlmodel import col

from hub import accounts
from hub import runtime as hub_runtime
from hub.ops import backup as backups
from hub.ops import privacy, status
from hub.settings import Settings, SettingsError, load_settings
from hub.store.models import ApiToken, AuditEvent
from hub.store.types import utcnow

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def status_command(as_json: bool) -> None:
    """Queues, stuck outbox items, last IMAP progress, campaigns and live workers."""

    async def work() -> status.Snapshot:
        runtime = await hub_runtime.build(_settings(), migrate_schema=False)
        try:
            return await status.snapshot(runtime)
        finally:
            await hub_runtime.close(runtime)

    snap = asyncio.run(work())
    click.echo(json.dumps(snap.as_json(), indent=2) if as_json else status.render(snap))


@click.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(dest: Path) -> None:
    """Write the database and attachment blobs to DEST (.tar.gz) while the hub keeps running."""
    try:
        info = backups.backup(_settings(), dest.absolute())
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup written: {info.path} ({info.database}, {info.blobs} blobs, {info.bytes} bytes)")


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask: the current database is replaced.")
def restore_command(source: Path, yes: bool) -> None:
    """Replace the database with a backup and add its blobs (stop `hub serve` and `hub worker` first)."""
    settings = _settings()
    if not yes:
        click.confirm(f"replace the database at {settings.database_url} with {source}?", abort=True)
    try:
        manifest = backups.restore(settings, source)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored backup of {manifest.get('created_at')} ({manifest.get('dialect')})")


@click.group("privacy")
def privacy_group() -> None:
    """GDPR: export or erase a customer, apply retention, show the consent ledger."""


async def _with_runtime(work: Callable[[hub_runtime.Runtime], Awaitable[T]]) -> T:
    async with hub_runtime.running(_settings(), workers=False) as runtime:
        return await work(runtime)


@privacy_group.command("export")
@click.argument("customer_id", type=int)
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
def export_command(customer_id: int, dest: Path) -> None:
    """Write everything held about CUSTOMER_ID to DEST (a zip)."""
    try:
        data: bytes = asyncio.run(_with_runtime(lambda rt: privacy.export_customer(rt, customer_id)))
    except privacy.NotFound as exc:
        raise click.ClickException(str(exc)) from None
    dest.write_bytes(data)
    click.echo(f"exported customer {customer_id} to {dest} ({len(data)} bytes)")


@privacy_group.command("erase")
@click.argument("customer_id", type=int)
@click.option("--reason", default="", help="Why (kept only as a hash in the audit record).")
@click.option("--actor", default="cli", show_default=True, help="Who asked, for the audit record.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(customer_id: int, reason: str, actor: str, yes: bool) -> None:
    """Erase CUSTOMER_ID's personal data for good (and of the customers merged into it)."""
    if not yes:
        click.confirm(f"erase customer {customer_id}? This cannot be undone", abort=True)
    try:
        report: privacy.EraseReport = asyncio.run(_with_runtime(
            lambda rt: privacy.erase_customer(rt, customer_id, actor=actor, reason=reason)))
    except privacy.NotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"erased": customer_id, "counts": report.counts, "blobs_deleted": report.blobs_deleted}))


@privacy_group.command("retention")
def retention_command() -> None:
    """Apply HUB_RETENTION_RAW_DAYS and HUB_RETENTION_CLOSED_YEARS now."""
    counts: dict[str, int] = asyncio.run(_with_runtime(privacy.apply_retention))
    click.echo(json.dumps(counts))


@privacy_group.command("consents")
@click.argument("customer_id", type=int)
def consents_command(customer_id: int) -> None:
    """The consent ledger of CUSTOMER_ID as JSON."""

    async def work(rt: hub_runtime.Runtime) -> dict[str, object]:
        async with rt.factory() as session:
            return await privacy.consent_ledger(session, customer_id)

    click.echo(json.dumps(asyncio.run(_with_runtime(work)), indent=2))


@click.group("sessions")
def sessions_group() -> None:
    """Revoke login sessions and API tokens."""


@sessions_group.command("revoke")
@click.argument("email")
def revoke_command(email: str) -> None:
    """Revoke every live token of the agent EMAIL."""

    async def work(rt: hub_runtime.Runtime) -> int | None:
        async with rt.factory() as session, session.begin():
            agent = await accounts.agent_by_email(session, email)
            if agent is None:
                return None
            result = await session.execute(update(ApiToken).where(
                col(ApiToken.agent_id) == agent.id, col(ApiToken.revoked_at).is_(None)).values(revoked_at=utcnow()))
            count = int(getattr(result, "rowcount", 0) or 0)
            session.add(AuditEvent(actor="cli", action="tokens.revoked", entity="agent", entity_id=agent.id,
                                   data={"count": count}))
            return count

    count = asyncio.run(_with_runtime(work))
    if count is None:
        raise click.ClickException(f"no agent with email {email}")
    click.echo(f"revoked {count} token(s) of {email}")


COMMANDS = (status_command, backup_command, restore_command, privacy_group, sessions_group)

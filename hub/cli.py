"""The `hub` command: init, agent, token, serve, worker, demo, quarantine (channels add `ingest ...`)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from hub import __version__, accounts
from hub import runtime as hub_runtime
from hub.channels.email.cli import email_command as ingest_email
from hub.channels.phone.cli import calls as ingest_calls
from hub.ops import gcpolicy
from hub.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def settings_or_exit() -> Settings:
    """Settings from the environment, or a one-line error naming the bad variable."""
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


async def with_runtime(settings: Settings, work: Callable[[hub_runtime.Runtime], Awaitable[T]]) -> T:
    """Run `work` on a migrated runtime whose in-process jobs drain before returning."""
    async with hub_runtime.running(settings) as runtime:
        result = await work(runtime)
        if (queue := hub_runtime.inprocess(runtime)) is not None:
            await queue.drain()
        return result


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hub")
def main() -> None:
    """The hub: one timeline per customer across email, SMS and phone.

    Configuration comes from HUB_* environment variables (see README).
    """
    from hub.ops.logging import configure

    configure(settings_or_exit())  # JSON lines (HUB_LOG_FORMAT=text for a terminal), secrets redacted


@main.command()
@click.option("--admin-email", default="admin@hub.localhost", show_default=True, help="Email of the first admin.")
@click.option("--admin-password", default=None, help="Password for the first admin (default: generated and printed).")
def init(admin_email: str, admin_password: str | None) -> None:
    """Create the database, apply migrations and create the first admin."""
    settings = settings_or_exit()

    async def work(rt: hub_runtime.Runtime) -> str | None:
        async with rt.factory() as session, session.begin():
            if await accounts.agent_by_email(session, admin_email) is not None:
                return None
            password = admin_password or accounts.new_password()
            await accounts.add_agent(session, admin_email, role="admin", name="Admin", password=password)
            return password

    try:
        password = run(with_runtime(settings, work))
    except accounts.AccountError as exc:
        raise click.ClickException(f"--admin-{exc.field}: {exc}") from None
    click.echo(f"database ready: {settings.database_url}")
    if password is None:
        click.echo(f"admin {admin_email} exists already; password unchanged")
    else:
        click.echo(f"admin: {admin_email}  password: {password}")


@main.group()
def agent() -> None:
    """Manage agents."""


@agent.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "agent", "marketer"]), default="agent", show_default=True)
@click.option("--name", default=None, help="Display name (default: from the email).")
@click.option("--password", default=None, help="Login password (default: generated and printed).")
def agent_add(email: str, role: str, name: str | None, password: str | None) -> None:
    """Add an agent with a role."""
    settings = settings_or_exit()
    chosen = password or accounts.new_password()

    async def work(rt: hub_runtime.Runtime) -> None:
        async with rt.factory() as session, session.begin():
            await accounts.add_agent(session, email, role=role, name=name, password=chosen, actor="cli")

    try:
        run(with_runtime(settings, work))
    except accounts.AccountError as exc:
        raise click.ClickException(f"{exc.field}: {exc}") from None
    click.echo(f"agent {email.lower()} ({role}) password: {chosen}")


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A label for the token.")
def token_create(email: str, name: str) -> None:
    """Print a new API token for EMAIL (use as `Authorization: Bearer <token>`)."""
    settings = settings_or_exit()

    async def work(rt: hub_runtime.Runtime) -> str | None:
        async with rt.factory() as session, session.begin():
            found = await accounts.agent_by_email(session, email)
            return None if found is None else await accounts.create_token(session, found, name)

    created = run(with_runtime(settings, work))
    if created is None:
        raise click.ClickException(f"no agent with email {email}")
    click.echo(created)


def _serve(settings: Settings, host: str, port: int, banner: Callable[[], None] | None = None) -> None:
    from aiohttp import web

    from hub.app import create_app
    from hub.web.access_log import AccessLog

    app = create_app(settings)
    gcpolicy.tune_for_service()
    if banner is not None:
        async def announce(_app: web.Application) -> None:
            banner()

        app.on_startup.append(announce)
    web.run_app(app, host=host, port=port, print=lambda _msg: None, access_log_class=AccessLog)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the web inbox and API (and run jobs in-process when HUB_REDIS_URL is unset)."""
    settings = settings_or_exit()
    _serve(settings, host, port, lambda: click.echo(f"hub serving on http://{host}:{port}/"))


@main.command()
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
def worker(burst: bool) -> None:
    """Run an arq worker (needs HUB_REDIS_URL)."""
    settings = settings_or_exit()
    if not settings.redis_url:
        raise click.ClickException("HUB_REDIS_URL is not set: `hub serve` runs jobs in-process without it")
    from arq.worker import Worker
    from redis.exceptions import RedisError

    from workers.settings import worker_settings

    gcpolicy.tune_for_service()
    delay = 1.0
    while True:
        kwargs = worker_settings(settings.redis_url, burst=burst)
        kwargs["ctx"] = {"hub_settings": settings}
        try:
            Worker(**kwargs).run()
            return
        except (RedisError, OSError) as exc:
            # Redis went away (restart, failover): wait and start again rather than exit, so a
            # Redis restart does not need an operator; claimed work is recovered by the sweepers.
            click.echo(f"hub worker: Redis unavailable ({exc}); restarting in {delay:.0f}s", err=True)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Seed and exit.")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Create and seed a demo hotel (once), print the admin login, then serve it."""
    from hub import demo as demo_data

    settings = settings_or_exit()
    admin = "admin@aurora.hotel.test"

    async def work(rt: hub_runtime.Runtime) -> str:
        if not await demo_data.is_seeded(rt):
            await demo_data.seed(rt)
        return await demo_data.ensure_admin(rt, admin)

    password = run(with_runtime(settings, work))

    def banner() -> None:
        click.echo(f"\nHotel Aurora demo on http://{host}:{port}/\n  login: {admin}\n  password: {password}\n"
                   f"  API: curl -H 'Authorization: Bearer <token>' http://{host}:{port}/api/v1/customers\n"
                   f"  (get a token: curl -X POST -d '{{\"email\":\"{admin}\",\"password\":\"{password}\"}}' "
                   f"http://{host}:{port}/api/v1/auth/login)\n")

    if no_serve:
        banner()
        return
    _serve(settings, host, port, banner)


@main.group()
def ingest() -> None:
    """Import messages and call records through the one ingest path."""


ingest.add_command(ingest_calls)
ingest.add_command(ingest_email)


@main.group()
def quarantine() -> None:
    """List and replay input that could not be parsed and jobs that failed for good."""


@quarantine.command("list")
@click.option("--stage", default=None, help="Only this stage prefix (parse, webhook, job:...).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per item.")
def quarantine_list(stage: str | None, as_json: bool) -> None:
    """Items waiting for a replay, oldest first."""
    from hub.core import quarantine as shunt

    async def work(rt: hub_runtime.Runtime) -> list[dict[str, object]]:
        return [{"id": i.id, "stage": i.stage, "channel": i.channel, "source": i.source, "error": i.error,
                 "bytes": len(i.raw or b""), "created_at": i.created_at.isoformat()}
                for i in await shunt.pending(rt.factory, stage=stage)]

    for row in run(with_runtime(settings_or_exit(), work)):
        if as_json:
            click.echo(json.dumps(row))
        else:
            click.echo(f"{row['id']:>6}  {row['stage']:<22} {row['channel'] or '-':<8} {row['error']}")


@quarantine.command("replay")
@click.argument("item_ids", nargs=-1, type=int, required=True)
def quarantine_replay(item_ids: tuple[int, ...]) -> None:
    """Send quarantined items down their path again (after a fix), by id."""
    from hub.core import quarantine as shunt

    async def work(rt: hub_runtime.Runtime) -> list[str]:
        replayers = rt.extras.get(hub_runtime.REPLAYERS, {})
        outcomes = []
        for item_id in item_ids:
            try:
                outcomes.append(f"{item_id}: {await shunt.replay(rt.factory, rt.queue, replayers, item_id)}")
            except shunt.NotReplayable as exc:
                outcomes.append(f"{item_id}: not replayed: {exc}")
        return outcomes

    for line in run(with_runtime(settings_or_exit(), work)):
        click.echo(line)


from hub.campaigns.cli import campaign as campaign_group  # noqa: E402 - registered after main is defined

main.add_command(campaign_group)


def entry() -> None:
    """Console entry point that turns configuration errors into exit code 2."""
    try:
        main()
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def _add_routing_commands() -> None:
    from hub.routing.cli import rules

    main.add_command(rules)


_add_routing_commands()


def _add_analytics_commands() -> None:
    from hub.analytics.cli import analytics, report

    main.add_command(analytics)
    main.add_command(report)


_add_analytics_commands()


def _add_ops_commands() -> None:
    from hub.ops.cli import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_add_ops_commands()

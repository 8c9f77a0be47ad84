"""`hub rules test|import|export`: see what the rules do, and move them as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import click
from sqlmodel import col, select

from hub import runtime as hub_runtime
from hub.routing import dryrun
from hub.routing.rules import RuleError, check_rule
from hub.settings import Settings, SettingsError, load_settings
from hub.store.models import Conversation, Message, Rule
from hub.store.types import utcnow

EXPORTED = ("name", "description", "event", "condition", "actions", "stop_processing", "enabled", "position")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _read_message(path: Path) -> tuple[str | None, str]:
    """Subject and text of an .eml file, or the whole file as text."""
    raw = path.read_bytes()
    if b"\n\n" not in raw.replace(b"\r\n", b"\n") or b":" not in raw.split(b"\n", 1)[0]:
        return None, raw.decode("utf-8", "replace")
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    body = mail.get_body(preferencelist=("plain", "html"))
    return mail.get("subject"), body.get_content() if body is not None else ""


async def _test(settings: Settings, message: Path | None, conversation: int | None) -> dict[str, Any]:
    async with hub_runtime.running(settings, workers=False) as runtime, runtime.factory() as session:
        if conversation is not None:
            message_id = (await session.execute(
                select(col(Message.id))
                .where(col(Message.conversation_id) == conversation, col(Message.direction) == "in")
                .order_by(col(Message.id).desc()).limit(1)
            )).scalar_one_or_none()
            if message_id is None or await session.get(Conversation, conversation) is None:
                raise click.ClickException(f"conversation {conversation} has no inbound message")
            return await dryrun.dry_run(session, settings, utcnow(), message_id=message_id)
        assert message is not None
        subject, text = _read_message(message)
        return await dryrun.dry_run(session, settings, utcnow(), text=text, subject=subject)


@click.group()
def rules() -> None:
    """Routing rules: test them on a message, import and export them as JSON."""


@rules.command("test")
@click.option("--message", "message", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An .eml or text file.")
@click.option("--conversation", type=int, help="Test on the last inbound message of this conversation.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def test(message: Path | None, conversation: int | None, as_json: bool) -> None:
    """Show which rules would fire and why (each condition's value); nothing is changed."""
    if (message is None) == (conversation is None):
        raise click.UsageError("give exactly one of --message or --conversation")
    result = asyncio.run(_test(_settings(), message, conversation))
    click.echo(json.dumps(result, default=str, indent=2, ensure_ascii=False) if as_json else dryrun.render(result))


async def _export(settings: Settings) -> list[dict[str, Any]]:
    async with hub_runtime.running(settings, workers=False) as runtime, runtime.factory() as session:
        rows = (await session.execute(select(Rule).order_by(col(Rule.position), col(Rule.id)))).scalars()
        return [{name: getattr(row, name) for name in EXPORTED} for row in rows]


@rules.command("export")
def export() -> None:
    """Print every rule as a JSON list (the input of `hub rules import`)."""
    click.echo(json.dumps(asyncio.run(_export(_settings())), indent=2, ensure_ascii=False))


def _validated(data: object) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise click.ClickException("expected a JSON list of rules")
    problems = []
    for n, item in enumerate(data):
        if not isinstance(item, dict) or not item.get("name") or set(item) - set(EXPORTED):
            problems.append(f"rule {n}: needs a name and only the keys {', '.join(EXPORTED)}")
            continue
        try:
            check_rule(item)
        except RuleError as exc:
            problems.append(f"rule {n} ({item['name']}): {exc}")
    if problems:
        raise click.ClickException("nothing imported:\n" + "\n".join(problems))
    return data


async def _import(settings: Settings, items: list[dict[str, Any]], replace: bool) -> int:
    async with hub_runtime.running(settings, workers=False) as runtime, runtime.factory() as session, \
            session.begin():
        existing = {r.name: r for r in (await session.execute(select(Rule))).scalars()}
        for item in items:
            row = existing.get(item["name"]) if replace else None
            if row is None:
                session.add(Rule(**item))
            else:
                for name, value in item.items():
                    setattr(row, name, value)
    return len(items)


@rules.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--replace/--add", default=True, show_default=True, help="Update rules with the same name.")
def import_(file: Any, replace: bool) -> None:
    """Validate every rule in FILE (JSON, '-' for stdin) and import all of them, or none."""
    try:
        data = json.loads(file.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"not JSON: {exc}") from None
    count = asyncio.run(_import(_settings(), _validated(data), replace))
    click.echo(f"imported {count} rules", file=sys.stdout)

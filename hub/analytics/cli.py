"""`hub analytics classify|import-stays|rules` and `hub report NAME --format csv|json|png`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from hub import runtime as hub_runtime
from hub.analytics import classifier, export, orders, reports
from hub.analytics.jobs import run_classifier
from hub.analytics.retention import PERIODS
from hub.routing.conditions import ConditionError
from hub.settings import SettingsError, load_settings

T = TypeVar("T")


def _run(work: Callable[[hub_runtime.Runtime], Awaitable[T]]) -> T:
    """Run `work` on a migrated runtime built from the environment."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> T:
        async with hub_runtime.running(settings) as runtime:
            return await work(runtime)

    return asyncio.run(go())


def _rules_from(path: Path | None) -> list[classifier.StageRuleSpec] | None:
    if path is None:
        return None
    try:
        return classifier.parse_rules(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ConditionError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None


@click.group()
def analytics() -> None:
    """Lifecycle classification and stay imports."""


@analytics.command("classify")
@click.option("--dry-run", is_flag=True, help="Show the moves without recording them.")
@click.option("--rules", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON list of {stage, condition} to use instead of the stored rules.")
def classify(dry_run: bool, rules_file: Path | None) -> None:
    """Place every customer in a lifecycle stage by RFM scores and the stage rules."""
    rules = _rules_from(rules_file)
    result = _run(lambda rt: run_classifier(rt, dry_run=dry_run, rules=rules))
    verb = "would move" if dry_run else "moved"
    click.echo(f"{verb} {result.changed} customer(s)")
    for (a, b), n in sorted(result.moves.items()):
        click.echo(f"  {a:>10} -> {b:<10} {n}")
    if dry_run:
        for cid, a, b in result.sample:
            click.echo(f"  customer {cid}: {a} -> {b}")


@analytics.command("rules")
def show_rules() -> None:
    """Print the stage rules in force, as JSON (edit and pass back with --rules)."""

    async def load(rt: hub_runtime.Runtime) -> list[classifier.StageRuleSpec]:
        async with rt.factory() as session:
            return await classifier.load_rules(session)

    rules = _run(load)
    click.echo(json.dumps([{"stage": r.stage, "description": r.description, "condition": r.condition}
                           for r in rules], indent=2, ensure_ascii=False))


@analytics.command("import-stays")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Import nothing from a file with any bad row.")
def import_stays(files: tuple[Path, ...], strict: bool) -> None:
    """Import stays and purchases from CSV files; already imported rows are skipped."""
    texts = [(f.name, f.read_text(encoding="utf-8-sig")) for f in files]

    async def work(rt: hub_runtime.Runtime) -> list[orders.ImportReport]:
        done = []
        for name, text in texts:
            async with rt.factory() as session, session.begin():
                done.append(await orders.import_text(session, name, text, strict=strict))
        return done

    failed = False
    for report in _run(work):
        click.echo(f"{report.file}: {report.read} read, {report.inserted} imported, "
                   f"{report.duplicates} already there, {len(report.errors)} rejected")
        for error in report.errors:
            click.echo(f"  {error}", err=True)
        failed = failed or bool(report.errors)
    if failed:
        sys.exit(1)


@click.command("report")
@click.argument("name", type=click.Choice(sorted(reports.REPORTS)))
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "png"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--period", type=click.Choice(PERIODS), default="month", show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="Window start (complaints, workload, ...).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Window end, inclusive.")
@click.option("--segment", "segment_id", type=int, help="Segment id for the segment report.")
@click.option("--limit", type=int, default=100, show_default=True)
def report(name: str, fmt: str, out: Path | None, period: Any, start: Any, end: Any, segment_id: int | None,
           limit: int) -> None:
    """Print or save a report: retention, cohorts, churn, complaints, workload, segment, ..."""
    if fmt == "png" and name != "retention":
        raise click.UsageError("--format png is available for the retention report")
    params = reports.Params(period=period, start=_date(start), end=_date(end), limit=limit, segment_id=segment_id)

    async def work(rt: hub_runtime.Runtime) -> list[dict[str, Any]]:
        async with rt.factory() as session:
            return await reports.run(session, name, params)

    try:
        rows = _run(work)
    except reports.ReportError as exc:
        raise click.ClickException(str(exc)) from None
    data = export.retention_png(rows) if fmt == "png" else (export.to_csv(rows) if fmt == "csv"
                                                             else export.to_json(rows) + "\n").encode()
    if out is not None:
        out.write_bytes(data)
        click.echo(f"wrote {out} ({len(rows)} rows)", err=True)
    elif fmt == "png":
        raise click.UsageError("--format png needs --out FILE")
    else:
        click.echo(data.decode(), nl=False)


def _date(value: Any) -> date | None:
    return value.date() if value is not None else None

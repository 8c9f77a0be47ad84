"""Importing parsed CDR rows: batched transactions, one savepoint per row, idempotent by external id."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from hub.channels.phone.cdr import CdrError, CdrRow, Result
from hub.core.calls import log_call
from hub.runtime import Runtime

BATCH = 500


@dataclass
class ImportSummary:
    """What an import did; `errors` are {"line", "message"} in file order."""

    imported: int = 0
    duplicates: int = 0
    updated: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"imported": self.imported, "duplicates": self.duplicates, "updated": self.updated,
                "errors": self.errors}


ErrorSink = Callable[[CdrError], None]


async def _import_batch(
    runtime: Runtime, rows: list[CdrRow], summary: ImportSummary, on_error: ErrorSink
) -> None:
    handlers = tuple(runtime.handlers)
    async with runtime.factory() as session, session.begin():
        for row in rows:
            try:
                async with session.begin_nested():  # a row the database refuses must not undo the batch
                    result = await log_call(session, row.call, handlers)
            except DBAPIError as exc:
                error = CdrError(row.line_no, f"refused by the database: {exc.orig}")
                summary.errors.append({"line": error.line_no, "message": error.message})
                on_error(error)
                continue
            if result.created:
                summary.imported += 1
            elif result.changed:
                summary.updated += 1
            else:
                summary.duplicates += 1


async def import_calls(
    runtime: Runtime, results: Iterable[Result], on_error: ErrorSink, batch: int = BATCH
) -> ImportSummary:
    """Log every good row (re-imports count as duplicates) and report every bad one to `on_error`."""
    summary, pending = ImportSummary(), []
    for item in results:
        if isinstance(item, CdrError):
            summary.errors.append({"line": item.line_no, "message": item.message})
            on_error(item)
            continue
        pending.append(item)
        if len(pending) >= batch:
            await _import_batch(runtime, pending, summary, on_error)
            pending = []
    if pending:
        await _import_batch(runtime, pending, summary, on_error)
    summary.errors.sort(key=lambda e: int(str(e["line"])))
    return summary

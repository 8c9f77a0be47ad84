"""Running outbox items: claim, run the handler for its kind, record the outcome, retry or shunt.

arq and the in-process dispatcher both call `run_outbox_item`; arq is at-least-once, so the
conditional claim (`queued -> running`) is what keeps an item from running twice at once.

Items of a kind in `JobContext.batch_kinds`, or of a kind and payload channel in `batch_channels`
(email sends), run in batches: the job of one item claims it and up to `batch_size - 1` more due
items like it (same kind, same channel) in one conditional UPDATE, runs their handlers
concurrently (a `BatchScope` lets them share one load and defer their writes), then records every
outcome and the deferred writes in one transaction. A kind with a `claim_loads` entry (email
sends) reads what its batch needs in the claim's own transaction. A kind with a `batch_runners`
entry (email sends) hands the whole batch to it instead: one `send_many`, one outcome per item. The
jobs of the items claimed ahead are then no-ops: skipped from memory in this process, by the
claim elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Integer, bindparam, func, literal_column, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.blobs import BlobStore
from hub.core.envelopes import Outbound, SendResult
from hub.core.outbox import JobQueue
from hub.store.bulk import DriverQuery, DriverStatement, Row, session_binder
from hub.store.engine import SessionFactory
from hub.store.models import OutboxItem, QuarantineItem, table
from hub.store.types import JsonType, UTCDateTime, utcnow

log = logging.getLogger(__name__)


class TransientError(Exception):
    """Ours or the provider's fault; worth another try later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The recipient's or the content's fault; retrying would fail the same way."""


class Sender(Protocol):
    """A channel's way out (SMTP, Twilio); tests plug real local servers in behind it."""

    async def send(self, item: Outbound) -> SendResult: ...


@dataclass(slots=True)
class Job:
    """A claimed outbox item as its handler sees it: the work (kind, payload), which try this is, when it was decided.

    A plain record, not the ORM row: a batch claims hundreds at once, and no handler writes to it.
    """

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    created_at: datetime


Handler = Callable[["JobContext", Job], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ClaimLoad:
    """What a batching kind reads for its items in the claim's own transaction (no session of its own).

    Handlers of the batch get it from `BatchScope.shared(key, ...)` as if they had loaded it.
    """

    key: str
    run: Callable[[AsyncSession, list[Job]], Awaitable[Any]]


# Runs a whole claimed batch of one kind at once (one load, one send_many), one Attempt per item in order.
BatchRunner = Callable[["JobContext", list[Job]], Awaitable[list["Attempt"]]]
T = TypeVar("T")
R = TypeVar("R")


# What batches together, and so shares a pace: an outbox kind, and the payload channel it batches on.
BatchKey = tuple[str, str | None]


class BatchPace:
    """How many items the next batch of a key claims: about `seconds` of sending at the pace its
    last batches finished, so a fast server gets big batches (one claim and one record per several
    hundred sends) while a slow one's batches, and with them a crash's resends and the wait for
    delivery states, stay short. `first` until a pace is known; an idle spell keeps the last pace.
    """

    def __init__(self, seconds: float = 0.5, first: int = 100) -> None:
        self.seconds, self.first = seconds, first
        self._rate: dict[BatchKey, float] = {}  # items per second, smoothed over the last batches
        self._last_end: dict[BatchKey, float] = {}

    def size(self, key: BatchKey, most: int) -> int:
        """The next batch size for `key`, between 1 and `most`."""
        rate = self._rate.get(key)
        wanted = self.first if rate is None else round(rate * self.seconds)
        return max(1, min(most, wanted))

    def finished(self, key: BatchKey, count: int, now: float) -> None:
        """A batch of `count` items of `key` ended at `now` (monotonic seconds)."""
        last, self._last_end[key] = self._last_end.get(key), now
        if last is None or now - last > 10 * self.seconds:  # idle in between: no pace to learn from
            return
        sample = count / max(now - last, 1e-3)
        old = self._rate.get(key)
        self._rate[key] = sample if old is None else (old + sample) / 2


@dataclass
class JobContext:
    """Resources every job may use; built once per worker process."""

    factory: SessionFactory
    queue: JobQueue
    blobs: BlobStore
    handlers: dict[str, Handler] = field(default_factory=dict)
    # kind -> a runner for a whole batch of its items, used instead of one handler call per item.
    batch_runners: dict[str, BatchRunner] = field(default_factory=dict)
    # kind -> what its batches read in the claim's transaction (see ClaimLoad).
    claim_loads: dict[str, ClaimLoad] = field(default_factory=dict)
    senders: Mapping[str, Sender] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    stuck_after: timedelta = timedelta(minutes=5)
    batch_kinds: set[str] = field(default_factory=set)  # kinds whose items all run in batches
    # kind -> the payload "channel" values whose items run in batches (the channel registers itself).
    batch_channels: dict[str, set[str]] = field(default_factory=dict)
    # Outcomes are recorded once per batch: a worker killed mid-batch leaves its batch's rows
    # running, revived after stuck_after and sent again if they had gone out (at-least-once). The
    # pace keeps a batch to a short spell of sending, and never over batch_size items.
    batch_size: int = 1000
    pace: BatchPace = field(default_factory=BatchPace)
    batch_concurrency: int = 8  # handlers of one batch in flight at once (the SMTP pool queues the rest)
    # Items this process claimed ahead in a batch, by id, with the monotonic time of the claim: their
    # own jobs, when they arrive here, are skipped without a database round trip.
    claimed_ahead: dict[int, float] = field(default_factory=dict)
    # The batches' database work (claim, load, record) takes turns within a process: a job waiting
    # for its claim then finds the ids claimed ahead noted, instead of asking for a row already taken,
    # and SQLite writers queue here instead of sleeping in its busy handler (1, 2, 5, 10 ms...).
    db_turn: asyncio.Lock = field(default_factory=asyncio.Lock)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff capped at an hour: 2, 4, 8 ... seconds."""
    return float(min(2 ** max(attempt, 1), 3600))


# A handler that finished its row itself (in the transaction recording its effect) returns this key,
# which saves one write transaction per job.
FINISHED = "finished"


async def _finish(factory: SessionFactory, item_id: int, status: str, **values: Any) -> None:
    async with factory() as session, session.begin():
        await session.execute(
            update(OutboxItem).where(col(OutboxItem.id) == item_id, col(OutboxItem.status) == "running")
            .values(status=status, updated_at=utcnow(), **values)
        )


async def finish_in(session: AsyncSession, item: Job, result: dict[str, Any]) -> None:
    """Mark a running item done inside the caller's transaction."""
    await session.execute(
        update(OutboxItem).where(col(OutboxItem.id) == item.id, col(OutboxItem.status) == "running")
        .values(status="done", updated_at=utcnow(), result=result, last_error=None)
    )


async def _retry_or_shunt(ctx: JobContext, item: Job, exc: BaseException, delay: float | None) -> str:
    if item.attempt >= item.max_attempts:
        await _shunt(ctx, item, exc)
        return "dead"
    wait = delay if delay is not None else backoff_seconds(item.attempt)
    await _finish(
        ctx.factory, item.id, "queued", last_error=f"{type(exc).__name__}: {exc}",
        available_at=utcnow() + timedelta(seconds=wait),
    )
    ctx.claimed_ahead.pop(item.id, None)
    await ctx.queue.enqueue(item.id, delay=wait)
    return "retry"


async def _shunt(ctx: JobContext, item: Job, exc: BaseException) -> None:
    """A job that failed for good becomes a dead-letter row; `hub quarantine replay` re-queues it."""
    await _finish(ctx.factory, item.id, "dead", last_error=f"{type(exc).__name__}: {exc}")
    async with ctx.factory() as session, session.begin():
        session.add(QuarantineItem(
            stage=f"job:{item.kind}", payload={"outbox_id": item.id, **item.payload},
            error=f"{type(exc).__name__}: {exc}", traceback="".join(traceback.format_exception(exc)),
        ))


async def run_outbox_item(ctx: JobContext, item_id: int) -> str:
    """Run one outbox item to an outcome: done, failed, retry, dead, or skipped.

    For a batch kind, the outcome is this item's; the others claimed with it are run too.
    """
    if taken_ahead(ctx, item_id):
        return "skipped"
    async with ctx.db_turn:
        if taken_ahead(ctx, item_id):
            return "skipped"
        claimed = await claim_batch(ctx, item_id)
        _remember_ahead(ctx, claimed.items[1:])
    if not claimed.items:
        return "skipped"
    if _batches(ctx, claimed.items[0]):
        return (await run_batch(ctx, claimed.items, claimed.loaded))[item_id]
    return await _run_one(ctx, claimed.items[0])


async def _run_one(ctx: JobContext, item: Job) -> str:
    """The single-item path: the handler may commit its own work; the outcome is recorded after."""
    item_id = item.id
    handler = ctx.handlers.get(item.kind)
    if handler is None:
        await _shunt(ctx, item, LookupError(f"no handler for outbox kind {item.kind!r}"))
        return "dead"
    try:
        result = await handler(ctx, item)
    except TransientError as exc:
        return await _retry_or_shunt(ctx, item, exc, exc.retry_after)
    except PermanentError as exc:
        await _finish(ctx.factory, item_id, "failed", last_error=str(exc))
        return "failed"
    except Exception as exc:  # one catch point: an unexpected crash is retried, then shunted
        log.exception("outbox item %s (%s) crashed", item_id, item.kind)
        return await _retry_or_shunt(ctx, item, exc, None)
    if not result.get(FINISHED):
        await _finish(ctx.factory, item_id, "done", result=result, last_error=None)
    return "done"


# --- batches ------------------------------------------------------------------------------------

_AHEAD_TTL = 60.0  # seconds: a job that comes later than this for an item claimed ahead asks the database
_AHEAD_MAX = 100_000
_BATCH: ContextVar[BatchScope | None] = ContextVar("hub_outbox_batch", default=None)

Flush = Callable[[AsyncSession, list[Any]], Awaitable[None]]


class BatchScope:
    """What the handlers of one batch share: loads done once, writes committed with the outcomes."""

    def __init__(self, items: list[Job], turn: asyncio.Lock, loaded: Mapping[str, Any] | None = None) -> None:
        self.items = items
        self._turn = turn
        self._loaded: Mapping[str, Any] = loaded or {}  # read with the claim (ClaimLoad), by key
        self._loads: dict[str, asyncio.Future[Any]] = {}
        self._writes: dict[str, tuple[Flush, list[Any]]] = {}

    async def shared(
        self, key: str, load: Callable[[list[Job]], Awaitable[T]], *, in_turn: bool = False
    ) -> T:
        """`load(items)` run once for the whole batch; every handler awaiting `key` gets its result.

        `in_turn`: the load takes the process's database turn (JobContext.db_turn) while it runs.
        A key the claim loaded already (ClaimLoad) is answered from that.
        """
        if key in self._loaded:
            ready: T = self._loaded[key]
            return ready
        future = self._loads.get(key)
        if future is None:
            future = self._loads[key] = asyncio.ensure_future(self._in_turn(load) if in_turn else load(self.items))
        elif future.done():  # most of a batch's handlers come after the load: no shield to build
            done: T = future.result()
            return done
        result: T = await asyncio.shield(future)
        return result

    async def _in_turn(self, load: Callable[[list[Job]], Awaitable[T]]) -> T:
        async with self._turn:
            return await load(self.items)

    def defer(self, key: str, value: Any, flush: Flush) -> None:
        """Queue a write; `flush(session, values)` runs once, in the transaction recording the outcomes."""
        self._writes.setdefault(key, (flush, []))[1].append(value)

    async def flush(self, session: AsyncSession) -> None:
        """Run the deferred writes."""
        for write, values in self._writes.values():
            await write(session, values)


def batch_scope() -> BatchScope | None:
    """The batch the calling handler runs in, or None when it runs alone."""
    return _BATCH.get()


def _batch_channel(ctx: JobContext, item: Job) -> str | None:
    """The payload channel this item batches on (batch_channels), else None."""
    channel = item.payload.get("channel")
    return channel if isinstance(channel, str) and channel in ctx.batch_channels.get(item.kind, ()) else None


def _batches(ctx: JobContext, item: Job) -> bool:
    """Whether the item runs in a batch (with others of its kind, or of its kind and channel)."""
    return item.kind in ctx.batch_kinds or _batch_channel(ctx, item) is not None


_outbox = table(OutboxItem).c
_NOW = bindparam("b_now", type_=UTCDateTime())
_CLAIM = {"status": "running", "claimed_at": _NOW, "attempt": _outbox.attempt + 1, "updated_at": _NOW}
# What a claim reads back: a Job's fields, in order (no more: each column is converted row by row).
_RETURNED = (_outbox.id, _outbox.kind, _outbox.payload, _outbox.attempt, _outbox.max_attempts, _outbox.created_at)
# Statements built once and run at the driver (one round trip each): a batch needs a hundred
# plain items, not the ORM's per-row loading (identity map, events) nor a statement rebuilt per claim.
_CLAIM_ONE = DriverQuery(
    update(table(OutboxItem))
    .where(_outbox.id == bindparam("b_id"), _outbox.status == "queued", _outbox.available_at <= _NOW)
    .values(**_CLAIM).returning(*_RETURNED)
)


@lru_cache(maxsize=2)
def _claim_more(by_channel: bool) -> DriverQuery:
    """Claim up to b_limit due items of one kind (and payload channel), oldest first."""
    # SKIP LOCKED: on PostgreSQL concurrent claimers take different rows instead of queueing
    # behind each other; the repeated status test settles any race (READ COMMITTED re-check).
    # A CTE, because PostgreSQL may run an IN (... LIMIT n SKIP LOCKED) subquery more than
    # once and so claim more than n rows; a locking CTE is evaluated once.
    due = (
        select(_outbox.id)
        .where(_outbox.status == "queued", _outbox.kind == bindparam("b_kind"), _outbox.available_at <= _NOW,
               _outbox.payload["channel"].as_string() == bindparam("b_channel") if by_channel else true())
        .order_by(_outbox.available_at, _outbox.id).limit(bindparam("b_limit", type_=Integer()))
        .with_for_update(skip_locked=True).cte("due")
    )
    return DriverQuery(
        update(table(OutboxItem)).where(_outbox.id.in_(select(due.c.id)), _outbox.status == "queued")
        .values(**_CLAIM).returning(*_RETURNED)
    )


def _claimed(rows: Sequence[Row]) -> list[Job]:
    """Jobs from RETURNING rows."""
    return [Job(*row) for row in rows]


@dataclass(slots=True)
class Claimed:
    """Items claimed together (the job's own first), and what the kind's claim-time load read for them."""

    items: list[Job]
    loaded: dict[str, Any] = field(default_factory=dict)


async def claim_batch(ctx: JobContext, item_id: int) -> Claimed:
    """Claim `item_id` (first) and, when it batches, up to batch_size - 1 more due items like it.

    A batching kind's `claim_loads` entry runs in the same transaction, over all the claimed items.
    """
    now = utcnow()
    async with ctx.factory() as session, session.begin():
        claimed = Claimed(_claimed(await _CLAIM_ONE.rows(session, {"b_id": item_id, "b_now": now})))
        first = claimed.items[0] if claimed.items else None
        if first is None or not _batches(ctx, first):
            return claimed
        channel = _batch_channel(ctx, first)
        if (size := ctx.pace.size((first.kind, channel), ctx.batch_size)) > 1:
            more = await _claim_more(channel is not None).rows(
                session, {"b_kind": first.kind, "b_now": now, "b_channel": channel, "b_limit": size - 1})
            claimed.items.extend(_claimed(more))
        if (load := ctx.claim_loads.get(first.kind)) is not None:
            claimed.loaded[load.key] = await load.run(session, claimed.items)
    return claimed


def taken_ahead(ctx: JobContext, item_id: int) -> bool:
    """Whether this process claimed the item in another item's batch lately (the note is used up)."""
    since = ctx.claimed_ahead.pop(item_id, None)
    return since is not None and time.monotonic() - since < _AHEAD_TTL


def _remember_ahead(ctx: JobContext, items: list[Job]) -> None:
    now = time.monotonic()
    for item in items:
        ctx.claimed_ahead[item.id] = now
    while len(ctx.claimed_ahead) > _AHEAD_MAX:  # jobs that never came (enqueued elsewhere): forget the oldest
        del ctx.claimed_ahead[next(iter(ctx.claimed_ahead))]


@dataclass(slots=True)
class Attempt:
    """How one item of a batch ended: done (with its result), failed, retry, or dead."""

    item: Job
    outcome: str
    result: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    delay: float | None = None


async def _attempt(ctx: JobContext, item: Job) -> Attempt:
    """Run one item's handler; every exception becomes an outcome (one catch point per item)."""
    handler = ctx.handlers.get(item.kind)
    if handler is None:
        return Attempt(item, "dead", error=LookupError(f"no handler for outbox kind {item.kind!r}"))
    try:
        result = await handler(ctx, item)
    except TransientError as exc:
        return Attempt(item, "retry", error=exc, delay=exc.retry_after)
    except PermanentError as exc:
        return Attempt(item, "failed", error=exc)
    except Exception as exc:  # an unexpected crash is retried, then shunted
        log.exception("outbox item %s (%s) crashed", item.id, item.kind)
        return Attempt(item, "retry", error=exc)
    return Attempt(item, "done", result=result)


async def run_batch(
    ctx: JobContext, items: list[Job], loaded: Mapping[str, Any] | None = None
) -> dict[int, str]:
    """Run claimed items of one kind concurrently and record all outcomes in one transaction.

    `loaded`: what the claim read for them (Claimed.loaded), handed to the handlers by BatchScope.shared.
    """
    scope = BatchScope(items, ctx.db_turn, loaded)
    token = _BATCH.set(scope)  # the lanes' tasks copy the context, and with it the scope
    try:
        runner = ctx.batch_runners.get(items[0].kind)
        attempts = await (_run_whole(ctx, runner, items) if runner else _run_in_lanes(ctx, items))
    finally:
        _BATCH.reset(token)
    ctx.pace.finished((items[0].kind, _batch_channel(ctx, items[0])), len(items), time.monotonic())
    return await _record(ctx, scope, attempts)


async def _run_in_lanes(ctx: JobContext, items: list[Job]) -> list[Attempt]:
    """Each item's handler, batch_concurrency at a time."""
    return await in_lanes(ctx.batch_concurrency, items, lambda item: _attempt(ctx, item))


async def in_lanes(lanes: int, items: Sequence[T], run: Callable[[T], Awaitable[R]]) -> list[R]:
    """`run(item)` for every item, at most `lanes` at once, taken in order; the results in item order."""
    results: list[R | None] = [None] * len(items)
    todo = iter(range(len(items)))

    async def lane() -> None:  # the lanes take the items in turn
        for index in todo:
            results[index] = await run(items[index])

    await asyncio.gather(*(lane() for _ in range(max(1, min(lanes, len(items))))))
    return cast(list[R], results)  # every place is filled once the lanes are done


async def _run_whole(ctx: JobContext, runner: BatchRunner, items: list[Job]) -> list[Attempt]:
    """The kind's batch runner; if it crashes, every item of the batch is retried (then shunted)."""
    try:
        return await runner(ctx, items)
    except Exception as exc:  # one catch point for the batch, as _attempt is for one item
        log.exception("outbox batch of %d %s items crashed", len(items), items[0].kind)
        return [Attempt(item, "retry", error=exc) for item in items]


# The batch's new item states in one driver-level executemany (hub.store.bulk): values are
# converted once by the column types' own processors, not per row by SQLAlchemy's execution.
_FINISH_MANY = DriverStatement(
    update(table(OutboxItem))
    .where(_outbox.id == bindparam("b_id"), _outbox.status == literal_column("'running'"))
    .values(status=bindparam("b_status"), last_error=bindparam("b_error"),
            result=func.coalesce(bindparam("b_result", type_=JsonType), _outbox.result),
            available_at=func.coalesce(bindparam("b_available", type_=UTCDateTime()), _outbox.available_at),
            updated_at=bindparam("b_now")),
    ("b_id", "b_status", "b_result", "b_error", "b_available", "b_now"),
)
# (id, status, result, last_error, available_at): a _FINISH_MANY row before its values are converted;
# result only when done, available_at only for a retry (None keeps the row's own).
_Finish = tuple[int, str, dict[str, Any] | None, str | None, datetime | None]


def _settle(attempt: Attempt, now: datetime) -> tuple[str, _Finish, float | None]:
    """(final outcome, row values, retry delay) of one attempt; a retry past max_attempts is dead."""
    item, error = attempt.item, attempt.error
    message = f"{type(error).__name__}: {error}" if error else None
    if attempt.outcome == "done":
        return "done", (item.id, "done", attempt.result, None, None), None
    if attempt.outcome == "failed":
        return "failed", (item.id, "failed", None, str(error), None), None
    if attempt.outcome == "retry" and item.attempt < item.max_attempts:
        wait = attempt.delay if attempt.delay is not None else backoff_seconds(item.attempt)
        return "retry", (item.id, "queued", None, message, now + timedelta(seconds=wait)), wait
    return "dead", (item.id, "dead", None, message, None), None


def _dead_letter(attempt: Attempt) -> QuarantineItem:
    item, exc = attempt.item, attempt.error
    assert exc is not None
    return QuarantineItem(
        stage=f"job:{item.kind}", payload={"outbox_id": item.id, **item.payload},
        error=f"{type(exc).__name__}: {exc}", traceback="".join(traceback.format_exception(exc)),
    )


async def _record(ctx: JobContext, scope: BatchScope, attempts: list[Attempt]) -> dict[int, str]:
    """One transaction: the handlers' deferred writes, every item's new state, the dead letters; then retries."""
    now = utcnow()
    outcomes: dict[int, str] = {}
    rows: list[_Finish] = []
    retries: list[tuple[int, float]] = []
    dead: list[QuarantineItem] = []
    for attempt in attempts:
        outcome, row, wait = _settle(attempt, now)
        outcomes[attempt.item.id] = outcome
        if outcome == "done" and attempt.result.get(FINISHED):
            continue  # the handler finished its row itself
        rows.append(row)
        if wait is not None:
            retries.append((attempt.item.id, wait))
        elif outcome == "dead":
            dead.append(_dead_letter(attempt))
    async with ctx.db_turn, ctx.factory() as session, session.begin():
        await scope.flush(session)
        bind = session_binder(session)
        at = bind.time(now)
        await _FINISH_MANY.run(session, [(item_id, status, result if result is None else bind.json(result), error,
                                          bind.time(available), at)
                                         for item_id, status, result, error, available in rows])
        session.add_all(dead)
    for item_id, wait in retries:
        ctx.claimed_ahead.pop(item_id, None)  # the retry's job must run, not be taken for a stale one
        await ctx.queue.enqueue(item_id, delay=wait)
    return outcomes


async def sweep(ctx: JobContext, *, grace: timedelta = timedelta(seconds=5), limit: int = 1000) -> dict[str, int]:
    """Re-queue items a crashed worker left running, and re-enqueue due items nobody picked up."""
    now = utcnow()
    async with ctx.factory() as session, session.begin():
        revived = await session.execute(
            update(OutboxItem)
            .where(OutboxItem.status == "running", OutboxItem.claimed_at < now - ctx.stuck_after)  # type: ignore[arg-type,operator]
            .values(status="queued", available_at=now, updated_at=now, last_error="worker lost; re-queued")
        )
        due = (await session.execute(
            select(col(OutboxItem.id))
            .where(col(OutboxItem.status) == "queued", col(OutboxItem.available_at) <= now - grace)
            .order_by(col(OutboxItem.available_at)).limit(limit)
        )).scalars().all()
    for item_id in due:
        if item_id is not None:
            ctx.claimed_ahead.pop(item_id, None)  # queued again: its next job must run
            await ctx.queue.enqueue(item_id)
    return {"revived": revived.rowcount, "enqueued": len(due)}  # type: ignore[attr-defined]

"""Context variables that follow one unit of work (a request, a job) through every await.

A webhook sets a trace id; the outbox row it writes carries it (hub.ops.wiring), and the job
that runs that row sets it again, so one id joins the webhook's log lines to the send's.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.core.jobs import Job

TRACE_ID: ContextVar[str | None] = ContextVar("hub_trace_id", default=None)
TRACE_KEY = "trace_id"  # the outbox payload key a job reads its trace id from
# Wall-clock time (epoch seconds) the current unit of work entered the hub: ingest latency is
# measured from here, so a job started from an outbox row uses the row's creation time.
STARTED_AT: ContextVar[float | None] = ContextVar("hub_started_at", default=None)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_trace_id() -> str:
    """32 hex digits; a label joining log lines, not a secret, so no system call for entropy."""
    return f"{random.getrandbits(128):032x}"


def clean_trace_id(offered: str | None) -> str:
    """A caller's X-Request-ID when it is short and plain (it ends up in logs), else a new one."""
    if offered and _SAFE_ID.match(offered):
        return offered
    return new_trace_id()


def current_trace_id() -> str | None:
    return TRACE_ID.get()


def trace_entry(trace_id: str | None) -> dict[str, str]:
    """The outbox payload entry that runs a job under `trace_id` (empty when there is none).

    For rows written with Core inserts, which the ORM hook in hub.ops.wiring never sees.
    """
    return {} if trace_id is None else {TRACE_KEY: trace_id}


@contextmanager
def traced(trace_id: str | None, started_at: float | None = None) -> Iterator[str]:
    """Run a block under a trace id (a new one when None) and start time; restores the outer ones."""
    tid = trace_id or new_trace_id()
    token_id = TRACE_ID.set(tid)
    token_at = STARTED_AT.set(started_at)
    try:
        yield tid
    finally:
        TRACE_ID.reset(token_id)
        STARTED_AT.reset(token_at)


def traced_job(job: Job) -> AbstractContextManager[str]:
    """Run a block under an outbox row's own trace id (the request that wrote it) and the row's creation time."""
    trace_id = job.payload.get(TRACE_KEY)
    return traced(trace_id if isinstance(trace_id, str) else None, job.created_at.timestamp())

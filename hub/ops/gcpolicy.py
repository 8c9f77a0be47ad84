"""Garbage-collector settings for the long-running processes (`hub serve`, `hub worker`).

CPython collects its youngest generation every 700 container allocations. A batch of sends
keeps a few thousand objects alive while its lanes wait on the network, so at that rate every
batch is traversed several times and promoted into older generations, whose collections then
walk the whole heap (modules, SQLAlchemy's caches) again and again: 268 collections and
0.22-0.39 s per 10,000 sends, 15-20% of the dispatcher's CPU (bench/smtp_send.py, no SMTP).
Freezing the start-up heap takes it out of every later collection, and a young generation of
20,000 objects lets a batch die young instead of being promoted.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune_for_service() -> None:
    """Freeze what start-up allocated and collect the young generation every 20,000 allocations."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)

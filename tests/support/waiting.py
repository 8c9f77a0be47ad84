"""Polling for a condition that other processes or tasks make true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(check: Callable[[], Awaitable[bool]], within: float, what: str, every: float = 0.02) -> float:
    """Seconds until `check()` holds; AssertionError naming `what` after `within` seconds."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - start

"""An aiosmtpd sink in a thread that records envelopes and can refuse recipients (4xx/5xx) on demand."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.services import free_port


@dataclass
class Sink:
    """Records what arrives; `fail[rcpt] = (reply, times)` refuses that recipient `times` times;
    `stall` seconds pass before the reply to each message's data."""

    envelopes: list[Any] = field(default_factory=list)
    fail: dict[str, tuple[str, int]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stall: float = 0.0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            self.attempts[address] = self.attempts.get(address, 0) + 1
            reply, times = self.fail.get(address, ("", 0))
            if times > 0:
                self.fail[address] = (reply, times - 1)
                return reply
        envelope.rcpt_tos.append(address)  # an override must append itself
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.stall:
            await asyncio.sleep(self.stall)
        with self.lock:
            self.envelopes.append(envelope)
        return "250 2.0.0 Message accepted for delivery"

    def messages_to(self, address: str) -> list[bytes]:
        with self.lock:
            return [bytes(e.original_content) for e in self.envelopes if address in e.rcpt_tos]


class SmtpSink:
    """Controller + Sink; `with SmtpSink() as sink:` serves on `sink.port`."""

    def __init__(self, idle_timeout: float = 300.0) -> None:
        self.sink = Sink()
        self.port = free_port()
        # `timeout` closes idle sessions server-side (421), as real relays do after a few minutes.
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port,
                                     timeout=idle_timeout)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

"""One IMAP mailbox over aioimaplib: connect (plain, STARTTLS, TLS), select, UID search/fetch, IDLE, move.

aioimaplib never raises on a dead socket (commands just time out), so every command here races
the connection-lost callback and fails at once with ImapError when the server goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import aioimaplib

from hub.channels.email.inbound import mailbox_address

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_UID = re.compile(rb"\bUID (\d+)")
_TLS_MODES = ("none", "starttls", "tls")


class ImapError(Exception):
    """The server refused a command, or the connection is gone; the poller reconnects with backoff."""


@dataclass(frozen=True, slots=True)
class MailboxConfig:
    """One mailbox to poll; `address` is the address mail in it was sent to (for reply tokens)."""

    host: str
    username: str
    password: str
    address: str
    port: int = 143
    tls: str = "none"
    folder: str = "INBOX"
    processed_folder: str | None = None
    idle: bool = True
    poll_seconds: float = 60.0
    idle_seconds: float = 300.0
    timeout: float = 30.0
    validate_certs: bool = True
    batch: int = 50
    backoff_min: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        if self.tls not in _TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(_TLS_MODES)}, not {self.tls!r}")
        object.__setattr__(self, "address", mailbox_address(self.address))

    @property
    def key(self) -> str:
        """The checkpoint key: one per server, user and folder."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"[:320]

    @classmethod
    def from_dict(cls, data: dict[str, Any], defaults: dict[str, Any]) -> MailboxConfig:
        """From a JSON object (HUB_IMAP_MAILBOXES), unknown keys refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown mailbox keys: {', '.join(unknown)}")
        return cls(**{**defaults, **data})


def _tls_context(config: MailboxConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not config.validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ImapSession:
    """A logged-in, selected session on one mailbox; use `async with` or call connect()/close()."""

    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        self.client: Any = None
        self._lost = asyncio.Event()

    async def __aenter__(self) -> ImapSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_lost(self, _exc: Exception | None) -> None:
        self._lost.set()

    async def _guard(self, work: Awaitable[T], stop: asyncio.Event | None = None) -> T | None:
        """Await `work` unless the connection drops (ImapError) or `stop` is set (None)."""
        task = asyncio.ensure_future(work)
        lost = asyncio.ensure_future(self._lost.wait())
        stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
        waiters = {task, lost} | ({stopped} if stopped is not None else set())
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters - {task}:
                waiter.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aioimaplib.AioImapException, OSError):
            await task
        if self._lost.is_set():
            raise ImapError(f"connection to {self.config.host}:{self.config.port} lost")
        return None

    async def _command(self, work: Coroutine[Any, Any, Any], what: str) -> Any:
        """Run one command; ImapError unless the server answered OK."""
        try:
            response = await self._guard(work)
        except (TimeoutError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"{what}: {exc!r}") from exc
        if response is None or response.result != "OK":
            raise ImapError(f"{what} refused: {response}")
        return response

    async def connect(self) -> None:
        """Connect, upgrade to TLS as configured, log in and select the folder."""
        cfg = self.config
        context = _tls_context(cfg) if cfg.tls != "none" else None
        self.client = aioimaplib.IMAP4(
            cfg.host, cfg.port, timeout=cfg.timeout, conn_lost_cb=self._on_lost,
            ssl_context=context if cfg.tls == "tls" else None,
        )
        try:
            await self._guard(self.client.wait_hello_from_server())
        except (TimeoutError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"no greeting from {cfg.host}:{cfg.port}: {exc!r}") from exc
        if cfg.tls == "starttls":
            assert context is not None
            await self._starttls(context)
        await self._command(self.client.login(cfg.username, cfg.password), "LOGIN")
        if cfg.processed_folder:
            await self._ensure_folder(cfg.processed_folder)

    async def _starttls(self, context: ssl.SSLContext) -> None:
        """RFC 3501 section 6.2.1 STARTTLS, which aioimaplib lacks: upgrade the transport in place."""
        protocol = self.client.protocol
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        await self._command(protocol.execute(command), "STARTTLS")
        loop = asyncio.get_running_loop()
        protocol.transport = await loop.start_tls(
            protocol.transport, protocol, context, server_hostname=self.config.host
        )
        # Capabilities before TLS must be discarded (RFC 3501 section 6.2.1).
        await self._guard(protocol.capability())

    async def _ensure_folder(self, name: str) -> None:
        response = await self._guard(self.client.create(name))
        # NO [ALREADYEXISTS] is the expected answer from the second start on.
        if response is not None and response.result not in ("OK", "NO"):
            raise ImapError(f"CREATE {name} refused: {response}")

    async def select(self) -> int:
        """Select the folder; return its UIDVALIDITY."""
        response = await self._command(self.client.select(self.config.folder), f"SELECT {self.config.folder}")
        for line in response.lines:
            if match := _UIDVALIDITY.search(bytes(line)):
                return int(match.group(1))
        raise ImapError(f"SELECT {self.config.folder}: no UIDVALIDITY in {response.lines!r}")

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid`, ascending (`n:*` also matches the highest UID, so filter)."""
        response = await self._command(self.client.uid_search(f"UID {last_uid + 1}:*", charset=None), "UID SEARCH")
        found: set[int] = set()
        for line in response.lines:
            # aioimaplib strips "* SEARCH", leaving the numbers (or an empty line for no match).
            parts = bytes(line).removeprefix(b"SEARCH").split()
            if parts and all(part.isdigit() for part in parts):
                found.update(int(part) for part in parts)
        return sorted(uid for uid in found if uid > last_uid)

    async def fetch(self, uids: list[int]) -> list[tuple[int, bytes]]:
        """Raw bytes of these messages (without setting \\Seen), in UID order."""
        if not uids:
            return []
        wanted = ",".join(str(u) for u in uids)
        response = await self._command(self.client.uid("fetch", wanted, "(UID BODY.PEEK[])"), "UID FETCH")
        return sorted(_literals(response.lines))

    async def move(self, uid: int, folder: str) -> None:
        """Move one message to `folder` (MOVE, or COPY + \\Deleted + UID EXPUNGE)."""
        if self.client.has_capability("MOVE"):
            await self._command(self.client.uid("move", str(uid), folder), "UID MOVE")
            return
        await self._command(self.client.uid("copy", str(uid), folder), "UID COPY")
        await self._command(self.client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE")
        if self.client.has_capability("UIDPLUS"):
            await self._command(self.client.uid("expunge", str(uid)), "UID EXPUNGE")

    async def wait_for_news(self, stop: asyncio.Event) -> None:
        """Return when new mail may have arrived: IDLE push, IDLE renewal, poll interval, or stop."""
        if not (self.config.idle and self.client.has_capability("IDLE")):
            await self._guard(asyncio.sleep(self.config.poll_seconds), stop)
            await self._command(self.client.noop(), "NOOP")
            return
        try:
            idle = await self._guard(self.client.idle_start(timeout=self.config.idle_seconds))
        except aioimaplib.AioImapException as exc:
            raise ImapError(f"IDLE: {exc!r}") from exc
        try:
            await self._wait_pushes(stop)
        finally:
            if not self._lost.is_set() and idle is not None:
                self.client.idle_done()
                with contextlib.suppress(asyncio.TimeoutError):
                    await self._guard(asyncio.wait_for(idle, self.config.timeout))

    async def _wait_pushes(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                push = await self._guard(self.client.wait_server_push(self.config.idle_seconds + 5), stop)
            except TimeoutError:
                return
            if push is None or push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                return  # stopped, or time to renew IDLE (servers drop it after 30 min)
            if any(b"EXISTS" in bytes(line) for line in push):
                return

    async def close(self) -> None:
        """Log out politely when the connection still works; never raises."""
        if self.client is None:
            return
        if not self._lost.is_set():
            with contextlib.suppress(ImapError, aioimaplib.AioImapException, asyncio.TimeoutError, OSError):
                await self._guard(asyncio.wait_for(self.client.logout(), 2))
        transport = getattr(self.client.protocol, "transport", None)
        if transport is not None:
            transport.close()
        self.client = None


def _literals(lines: list[Any]) -> list[tuple[int, bytes]]:
    """(uid, bytes) for every literal in a FETCH response; the UID sits before or after it."""
    found: list[tuple[int, bytes]] = []
    for index, line in enumerate(lines):
        if not isinstance(line, bytearray):
            continue
        around = [bytes(lines[index - 1]) if index else b""]
        if index + 1 < len(lines):
            around.append(bytes(lines[index + 1]))
        uid = next((int(m.group(1)) for text in around if (m := _UID.search(text))), None)
        if uid is not None:
            found.append((uid, bytes(line)))
    return found

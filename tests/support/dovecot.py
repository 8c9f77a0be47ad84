"""Debian's dovecot as an unprivileged IMAP server on a free port, with a passwd-file and a temp maildir.

As root the whole server runs as `nobody` (imap-login refuses root, and userdb may not return
uid 0); `kill9()` kills the process group, because killing the master alone leaves the imap
child serving the session.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import aioimaplib

from tests.support.services import free_port, wait_port

USER, PASSWORD = "guest", "secret"

_CONF = """\
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
first_valid_uid = {uid}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    """One dovecot instance; `start()`, `kill9()` and `stop()` may be called repeatedly (same port)."""

    def __init__(self, *, tls: bool = False) -> None:
        self.pw = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
        self.dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.proc: subprocess.Popen[bytes] | None = None
        ssl = self._make_cert() if tls else "ssl = no"
        group = grp.getgrgid(self.pw.pw_gid).gr_name
        (self.dir / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        (self.dir / "dovecot.conf").write_text(_CONF.format(
            d=self.dir, port=self.port, tls_port=self.tls_port, uid=self.pw.pw_uid, gid=self.pw.pw_gid,
            user=self.pw.pw_name, group=group, ssl=ssl,
        ))
        for path in self.dir.rglob("*"):
            os.chown(path, self.pw.pw_uid, self.pw.pw_gid)
        os.chown(self.dir, self.pw.pw_uid, self.pw.pw_gid)

    def _make_cert(self) -> str:
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
        )
        return f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"

    def start(self) -> None:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"  # non-root PATH may lack /usr/sbin
        who = {"user": self.pw.pw_uid, "group": self.pw.pw_gid} if os.getuid() == 0 else {}
        self.proc = subprocess.Popen([binary, "-F", "-c", str(self.dir / "dovecot.conf")],
                                     start_new_session=True, **who)  # type: ignore[call-overload]
        wait_port(self.port)

    def kill9(self) -> None:
        """Kill the master and every child at once, as a crash would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()  # a clean shutdown takes a second; the test data is thrown away anyway
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def client(self) -> aioimaplib.IMAP4:
        """A logged-in test client (the test's own, not the hub's)."""
        client = aioimaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        await client.wait_hello_from_server()
        response = await client.login(USER, PASSWORD)
        assert response.result == "OK", (response, self.log())
        return client

    async def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Deliver messages into a folder over IMAP, on one connection."""
        client = await self.client()
        try:
            for raw in messages:
                response = await client.append(raw, mailbox=folder)
                assert response.result == "OK", response
        finally:
            await client.logout()

    async def recreate(self, folder: str = "hub") -> None:
        """Delete and recreate a folder: its UIDVALIDITY changes, UIDs restart at 1."""
        client = await self.client()
        try:
            await client.delete(folder)
            await asyncio.sleep(1.1)  # dovecot derives UIDVALIDITY from the clock in seconds
            assert (await client.create(folder)).result == "OK"
        finally:
            await client.logout()

    async def count(self, folder: str = "INBOX") -> int:
        client = await self.client()
        try:
            response = await client.select(folder)
            return next(int(bytes(line).split()[0]) for line in response.lines if b"EXISTS" in bytes(line))
        finally:
            await client.logout()

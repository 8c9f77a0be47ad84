"""Real processes for the campaign end-to-end tests: redis-server, an SMTP sink, `hub worker`s."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.services import free_port, wait_port

ROOT = Path(__file__).resolve().parents[3]


class Redis:
    """A private redis-server (no persistence): a restart loses every queued job, as a crash would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", self.dir, "--daemonize", "yes"], check=True,
                       stdout=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        for _ in range(100):
            try:
                wait_port(self.port, tries=1)
            except TimeoutError:
                return
            time.sleep(0.05)


@contextmanager
def redis_server() -> Iterator[Redis]:
    server = Redis()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


class Sink:
    """The SMTP sink process and what it recorded."""

    def __init__(self, out: Path, delay: float = 0.0) -> None:
        self.port, self.out = free_port(), out
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.integration.campaigns.sink_proc", str(self.port),
                                      str(out), str(delay)], cwd=ROOT)
        wait_port(self.port)

    def lines(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def counts(self) -> Counter[str]:
        return Counter(line["rcpt"] for line in self.lines())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def worker_env(database_url: str, redis_url: str, smtp_port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_REDIS_URL": redis_url, "HUB_SMTP_HOST": "127.0.0.1",
           "HUB_SMTP_PORT": str(smtp_port), "HUB_DATA_DIR": str(data_dir), "HUB_CAMPAIGN_TICK_SECONDS": "1",
           "HUB_CAMPAIGN_STALE_SECONDS": "5", "HUB_CAMPAIGN_LEASE_SECONDS": "20", "HUB_PUBLIC_URL": "https://hub.test",
           "HUB_MAIL_DOMAIN": "hub.test", "HUB_SMTP_FROM": "offers@hotel.test", "PYTHONWARNINGS": "ignore"}
    env.pop("HUB_IMAP_HOST", None)
    return {**env, **extra}


class Worker:
    """One `python -m hub worker` process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.log.close()

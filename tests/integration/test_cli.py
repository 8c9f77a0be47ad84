"""The `hub` command as a user runs it: real processes, real database files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hub import __version__
from tests.support.services import free_port, wait_port


def hub(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "HUB_DATA_DIR": str(tmp_path),
               **(env or {})}
    environ.pop("HUB_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=tmp_path, env=environ, capture_output=True,
                          text=True, timeout=120)


def test_version_and_help_on_every_command(tmp_path: Path) -> None:
    assert hub(tmp_path, "--version").stdout.strip().endswith(__version__)
    for command in ("init", "agent", "token", "serve", "worker", "demo", "ingest"):
        result = hub(tmp_path, command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, command


def test_init_then_agent_and_token_for_scripts(tmp_path: Path) -> None:
    first = hub(tmp_path, "init", "--admin-email", "boss@hotel.test", "--admin-password", "very-secret-42")
    assert first.returncode == 0, first.stderr
    assert "boss@hotel.test" in first.stdout and "very-secret-42" in first.stdout
    again = hub(tmp_path, "init", "--admin-email", "boss@hotel.test")
    assert "exists already" in again.stdout
    added = hub(tmp_path, "agent", "add", "Sara@Hotel.test", "--role", "marketer")
    assert added.returncode == 0 and "sara@hotel.test (marketer)" in added.stdout
    duplicate = hub(tmp_path, "agent", "add", "sara@hotel.test")
    assert duplicate.returncode == 1 and "exists already" in duplicate.stderr
    token = hub(tmp_path, "token", "create", "sara@hotel.test")
    assert token.returncode == 0 and token.stdout.startswith("hub_")
    missing = hub(tmp_path, "token", "create", "nobody@hotel.test")
    assert missing.returncode == 1 and "no agent" in missing.stderr


def test_weak_password_and_bad_setting_are_clear_errors(tmp_path: Path) -> None:
    weak = hub(tmp_path, "init", "--admin-password", "short")
    assert weak.returncode == 1 and "password" in weak.stderr
    bad = hub(tmp_path, "init", env={"HUB_DEFAULT_REGION": "ZZ"})
    assert bad.returncode == 1 and "HUB_DEFAULT_REGION" in bad.stderr


@pytest.mark.slow
def test_demo_serves_the_api_and_lists_the_demo_customers(tmp_path: Path) -> None:
    port = free_port()
    environ = {**os.environ, "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "HUB_DATA_DIR": str(tmp_path)}
    environ.pop("HUB_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "hub", "demo", "--port", str(port)], cwd=tmp_path, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_port(port, tries=600)
        login = _printed_password(proc)
        token = _post(port, "/api/v1/auth/login", {"email": "admin@aurora.hotel.test", "password": login})["token"]
        customers = _get(port, "/api/v1/customers?limit=200", token)["items"]
        stages = {c["lifecycle_stage"] for c in customers}
        assert len(customers) >= 50 and stages == {"prospect", "cultivable", "key", "advocate", "sub_zero"}
    finally:
        proc.terminate()
        proc.wait(10)


def _printed_password(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if "password:" in line:
            return line.split("password:")[1].strip()
    raise AssertionError("hub demo printed no password")


def _post(port: int, path: str, body: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _get(port: int, path: str, token: str) -> dict[str, list[dict[str, str]]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]

#!/usr/bin/env bash
# Quick start 2: install everything the tests need (Debian packages + Python packages) and run
# lint, type checks and the whole test-suite on SQLite and PostgreSQL with real Redis, dovecot,
# aiosmtpd and Debian chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || need_apt+=(dovecot-imapd)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's dovecot package starts a system instance; tests run their own unprivileged ones.

# The services the suite talks to: start them when they are down.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"; ruff check .
echo "== mypy"; mypy hub workers
echo "== pip-audit (the installed environment)"
# Fatal for every vulnerability that has a fixed release (raise the pin). One with no fix yet is
# printed but does not fail the build: no change in this repository could clear it, and a red CI
# that nobody can turn green gets ignored. pip-audit's own failures (service unreachable) are
# fatal: no JSON report means the gate below fails.
AUDIT=$(mktemp); pip-audit --progress-spinner off --skip-editable --format json --output "$AUDIT" || true
python - "$AUDIT" <<'PY'
import json, sys
deps = json.load(open(sys.argv[1]))["dependencies"]
found = [(d["name"], d["version"], v["id"], v.get("fix_versions", [])) for d in deps for v in d.get("vulns", [])]
for name, version, vid, fixes in found:
    print(f"{'FIX AVAILABLE' if fixes else 'no fix yet'}: {name} {version} {vid} -> {', '.join(fixes) or '-'}")
sys.exit(1 if any(fixes for *_, fixes in found) else 0)
PY
echo "== pytest (SQLite + PostgreSQL, Redis, dovecot, aiosmtpd, chromium)"
# Two workers (one per core): most tests wait on real servers, so they overlap well. Each
# worker gets its own Redis database, PostgreSQL databases and ports. loadfile keeps a
# module's tests on one worker.
pytest -q -p no:cacheprovider -n "${HUB_TEST_WORKERS:-2}" --dist loadfile "$@"

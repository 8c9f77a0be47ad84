#!/usr/bin/env bash
# Quick start 1: install the hub into ./.venv and run the seeded demo hotel on the embedded default
# (SQLite under ./var, in-process jobs) at http://127.0.0.1:8080 — the login is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/hub demo "$@"

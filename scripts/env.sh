#!/usr/bin/env bash
# Creates .venv (once) and installs slimpose with its test and export extras.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (it re-installs only when
# pyproject.toml changed since the last install).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[slimpose] creating virtual environment in $VENV"
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.slimpose-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
    echo "[slimpose] installing slimpose and its dependencies (torch==2.13.0 CPU build)"
    # torch first, pinned to the tested CPU build (pyproject.toml only asks for torch>=2.5), so that
    # nothing later pulls a CUDA build or another version.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev,export,tensorboard]"
    touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"

#!/usr/bin/env bash
# Runs the whole test suite (creates the environment first if it is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec python -m pytest -q "$@"

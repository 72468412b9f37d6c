#!/usr/bin/env bash
# The main job on the built-in default: synthetic people -> teacher -> students -> report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec slimpose demo "$@"

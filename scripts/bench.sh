#!/usr/bin/env bash
# Benchmarks against the Python tools users would otherwise pick, measured in one run:
#   bash scripts/bench.sh [--reps N]     (arguments go to scripts/bench_compare.py)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lw-target}"
VENV="${LW_VENV:-/var/tmp/lw-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import nibabel, skimage, numpy" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
exec "$VENV/bin/python" scripts/bench_compare.py "$@"

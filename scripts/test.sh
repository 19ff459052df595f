#!/usr/bin/env bash
# The project's test command (the README's second set-up command; .ci/run runs it too):
# formatting, lints, and every test, with the Python peers (nibabel, scikit-image) that the
# comparison tests read back our files with.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lw-target}"
VENV="${LW_VENV:-/var/tmp/lw-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import nibabel, skimage, numpy, safetensors" 2>/dev/null; then
  echo "== setting up Python peers in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
export LW_PYTHON="$VENV/bin/python"
export LW_REQUIRE_PYTHON=1
# The offscreen viewport tests (tests/render.rs) must find an adapter (lavapipe on CI).
export LW_REQUIRE_RENDER=1
# egui_kittest and the offscreen tests render on Mesa's lavapipe when they render at all.
unset WAYLAND_DISPLAY
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
echo "== cargo test"
cargo test --quiet 2>&1 | tee /tmp/lw-test.log

#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the file decoders (cargo-fuzz / libFuzzer).
#
#   bash .ci/fuzz.sh [SECONDS] [TARGET...]     # default 30 s each for targets: nifti ply pickle
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET, read-only) plus a scratch
# corpus (fuzz/corpus/TARGET, git-ignored). A crash, panic, timeout or out-of-memory fails the
# script; libFuzzer leaves the input in fuzz/artifacts/TARGET/ (replay it with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(nifti ply pickle)
fi

if ! command -v cargo-fuzz >/dev/null 2>&1 && ! [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# libFuzzer instrumentation needs nightly flags: use the nightly toolchain when rustup has one,
# else let stable accept them (RUSTC_BOOTSTRAP) and fuzz without AddressSanitizer.
toolchain=()
sanitizer=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  echo "== no nightly toolchain: fuzzing on stable with RUSTC_BOOTSTRAP=1 and no sanitizer"
  export RUSTC_BOOTSTRAP=1
  sanitizer=(--sanitizer none)
fi

# A target dir of its own: the instrumented build must not evict the main build's artifacts.
export CARGO_TARGET_DIR="${LW_FUZZ_TARGET_DIR:-/var/tmp/lw-fuzz-target}"

for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${secs}s"
  mkdir -p "fuzz/corpus/$target"
  cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
done
echo "== fuzzing finished: no crashes"

#!/bin/bash
# Runs the CUDA build of benches/inference.rs on the lent GPU machine (see docs/cuda-build.md).
# Usage (repo root): bash .gpu/run.sh   — writes everything to $OUT/gpu.log too. Ends in < 7 min.
set -u
HERE=$(cd "$(dirname "$0")/../../.gpu" && pwd)
OUT=${OUT:-/tmp/lw-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu.log") 2>&1
T0=$(date +%s)
source "$(dirname "$0")/cuda_env.sh"
BIN=/tmp/lw-inference-cuda
xz -dc "$HERE/inference-cuda.xz" > "$BIN" && chmod +x "$BIN"
sha256sum "$BIN"; cat "$HERE/inference-cuda.sha256" 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv; nvidia-smi | head -15
echo "--- ldd"; ldd "$BIN" | grep -E "cuda|cublas|curand|nvrtc|not found"
nproc; ldd --version | head -1

step() { # step TIMEOUT ARGS... : one bench run, its exit status and wall time
  local t=$1; shift
  echo; echo "=== inference $* (timeout ${t}s, at +$(( $(date +%s) - T0 ))s)"
  local s; s=$(date +%s.%N)
  RUST_BACKTRACE=1 timeout "$t" "$BIN" "$@"
  local rc=$?
  echo "=== rc=$rc wall=$(echo "$(date +%s.%N) - $s" | bc 2>/dev/null || true)s"
}

step 60  --task cuda_check --device cuda
step 45  --task conv3d --device cuda --impls auto --size 64 --channels 64 --reps 5 --warmup 1
echo; echo "=== torch F.conv3d 1x64x64^3 64->64 on cuda (reference for the conv3d line above)"
timeout 45 "$PY" - <<'PYEOF'
import time, torch, torch.nn.functional as F
torch.backends.cudnn.benchmark = False
x = torch.randn(1, 64, 64, 64, 64, device="cuda"); w = torch.randn(64, 64, 3, 3, 3, device="cuda"); b = torch.randn(64, device="cuda")
with torch.no_grad():
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        F.conv3d(x, w, b, padding=1); torch.cuda.synchronize()
        ts = []
        for _ in range(5):
            t = time.perf_counter(); F.conv3d(x, w, b, padding=1); torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
        print({"torch": torch.__version__, "cudnn_tf32": tf32, "median_s": sorted(ts)[2], "best_s": min(ts)})
PYEOF
step 100 --task ldae_ddim_step --device cuda --reps 3 --warmup 1
step 70  --task aekl_decode --device cuda --reps 3 --warmup 1
step 60  --task m2vs_grid --device cuda --size 128
left=$(( 400 - ($(date +%s) - T0) ))
[ "$left" -gt 150 ] && left=150
if [ "$left" -gt 20 ]; then
  step "$left" --task ldae_ddim_step --device cpu --reps 1 --warmup 0
else
  echo "=== skipped the CPU ldae_ddim_step: ${left}s left"
fi
echo; echo "=== done in $(( $(date +%s) - T0 ))s"
sleep 1

#!/bin/bash
# Trains the `m2vs-demo` model on the lent GPU with the CUDA build of the app (docs/cuda-build.md; the
# stripped binary travels xz-compressed as .gpu/latent-workbench-cuda.xz). A short probe run measures
# the seconds per step on this GPU; the real run then takes as many steps as fit in BUDGET seconds
# (rounded down to hundreds) and writes $OUT/models/m2vs-demo/{model.toml,model.safetensors}.
# The same run on the CPU is `latent-workbench train m2vs-demo --steps N` (numerically not identical:
# the GPU's reductions round differently).
# Usage (repo root, on the device): BUDGET=480 bash scripts/gpu/train_m2vs.sh
set -u
OUT=${OUT:-/tmp/lw-gpu-out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/train_m2vs.log") 2>&1
T0=$(date +%s)
BUDGET=${BUDGET:-480}
PROBE_STEPS=${PROBE_STEPS:-100}
source "$(dirname "$0")/cuda_env.sh"
BIN=/tmp/lw-cuda
xz -dc .gpu/latent-workbench-cuda.xz > "$BIN" && chmod +x "$BIN"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
"$BIN" devices

echo "=== probe: $PROBE_STEPS steps (at +$(( $(date +%s) - T0 ))s)"
"$BIN" train m2vs-demo -o /tmp/probe --steps "$PROBE_STEPS" --json > /tmp/probe.json || { echo "probe failed"; exit 1; }
cat /tmp/probe.json
STEPS=$("$PY" - "$BUDGET" "$(( $(date +%s) - T0 ))" <<'PYEOF'
import json, sys
budget, used = float(sys.argv[1]), float(sys.argv[2])
text = open("/tmp/probe.json").read()
p = json.loads(text[text.index("{"):])
per_step = p["train_seconds"] / p["steps"]
overhead = p["data_seconds"] + p["eval_seconds"] + 15  # data, held-out check, writing
steps = int((budget - used - overhead) / per_step * 0.9) // 100 * 100
print(max(steps, 0))
PYEOF
)
echo "=== full run: $STEPS steps (at +$(( $(date +%s) - T0 ))s)"
[ "$STEPS" -ge 1000 ] || { echo "too few steps fit: $STEPS"; exit 1; }
"$BIN" train m2vs-demo -o "$OUT/models" --steps "$STEPS" --json
echo "=== rc=$? done in $(( $(date +%s) - T0 ))s"

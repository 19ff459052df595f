#!/bin/bash
# One device call: the wgpu viewport bench on the GPU (Vulkan), then the CUDA inference checks.
set -u
OUT=${OUT:-/tmp/lw-gpu-out}; mkdir -p "$OUT"
{
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
ldconfig -p | grep -c libvulkan
ls /usr/local/nvidia/share/vulkan/icd.d/ 2>/dev/null; ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
xz -dc .gpu/viewport.xz > /tmp/viewport && chmod +x /tmp/viewport
export WGPU_BACKEND=vulkan
echo "=== viewport frame 1M triangles 1920x1080"
timeout 60 /tmp/viewport --task frame --size 1920x1080 --frames 120 --warmup 5
echo "=== rc=$?"
echo "=== viewport frame 4M triangles"
timeout 40 /tmp/viewport --task frame --size 1920x1080 --frames 60 --warmup 3 --quads 1000x2000
echo "=== rc=$?"
echo "=== viewport mc 256"
timeout 60 /tmp/viewport --task mc --size 256 --reps 3
echo "=== rc=$?"
} 2>&1 | tee "$OUT/viewport.log"
timeout 420 bash scripts/gpu/inference.sh
echo "run.sh rc=$?"

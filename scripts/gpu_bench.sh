#!/usr/bin/env bash
# Runs on the GPU machine (device tool; carry .deps made by scripts/make_deps.sh): builds with the machine's own
# torch into build-gpu, runs the CUDA correctness tests, then the benchmarks; tables are printed last.
# Usage: scripts/gpu_bench.sh [bench args...]; SURGEON_GPU_STEPS="build test dit attention vae" selects parts.
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS=${SURGEON_GPU_STEPS:-"build test dit attention vae"}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$OUT/gpu.txt"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" | tee -a "$OUT/gpu.txt"
if [[ $STEPS == *build* ]]; then
  TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DSURGEON_VENDORED_DEPS="$PWD/.deps" -DSURGEON_CUDA_ARCHS=90 >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
  cmake --build build-gpu -j 16 >"$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -30; exit 1; }
  echo "build ok"
fi
if [[ $STEPS == *test* ]]; then
  SURGEON_TEST_DEVICE=cuda ctest --test-dir build-gpu -L gpu --output-on-failure 2>&1 | tail -15
fi
[[ $STEPS == *dit* ]] && [ -x build-gpu/benchmarks/bench_dit ] && build-gpu/benchmarks/bench_dit --size 480p 720p 2>&1 | tee "$OUT/bench_dit.txt"
[[ $STEPS == *attention* ]] && [ -x build-gpu/benchmarks/bench_attention ] && build-gpu/benchmarks/bench_attention 2>&1 | tee "$OUT/bench_attention.txt"
[[ $STEPS == *vae* ]] && [ -x build-gpu/benchmarks/bench_vae ] && build-gpu/benchmarks/bench_vae --device cuda 2>&1 | tee "$OUT/bench_vae.txt"
exit 0

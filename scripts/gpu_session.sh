#!/usr/bin/env bash
# One GPU-machine session in phases (device tool; carry .deps and .golden). Phases:
#   build   configure + build everything in build-gpu with the machine's torch
#   test    whole ctest suite (CPU tests + -L gpu)
#   bench   bench_dit, bench_attention, bench_vae
#   train   probe the training rate, then train the bundled teacher for TRAIN_SECONDS (resumable)
#   resume  continue the teacher run (same step count) for at most TRAIN_SECONDS
#   eval    SynthBench eval + contact sheet of the teacher, pack model/ and logs into $OUT
# Usage: PHASES="build test bench train" TRAIN_SECONDS=600 scripts/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PHASES=${PHASES:-"build test bench"}
TRAIN_DIR=/tmp/teacher
BIN=build-gpu/cli/surgeon
has() { [[ " $PHASES " == *" $1 "* ]]; }
if has build; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
  TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DSURGEON_VENDORED_DEPS="$PWD/.deps" -DSURGEON_GOLDEN_DIR="$PWD/.golden" >/tmp/configure.log 2>&1 || { tail -20 /tmp/configure.log; exit 1; }
  start=$(date +%s)
  cmake --build build-gpu -j 16 -- -k 0 >/tmp/build.log 2>&1 || grep -E "error:|FAILED" /tmp/build.log | head -30
  echo "build: $(( $(date +%s) - start )) s"
fi
if has test; then
  ctest --test-dir build-gpu -j 16 --timeout 300 --output-on-failure >"$OUT/ctest.log" 2>&1
  grep -E "tests passed|\(Failed\)|Not Run" "$OUT/ctest.log" | head -30
fi
if has bench; then
  build-gpu/benchmarks/bench_dit --size 480p 720p --iters 5 2>&1 | tee "$OUT/bench_dit.txt" | tail -6
  [ -x build-gpu/benchmarks/bench_attention ] && build-gpu/benchmarks/bench_attention 2>&1 | tee "$OUT/bench_attention.txt" | tail -25
  [ -x build-gpu/benchmarks/bench_vae ] && build-gpu/benchmarks/bench_vae --device cuda 2>&1 | tee "$OUT/bench_vae.txt" | tail -8
fi
if has train; then
  rm -rf /tmp/probe
  s=$(date +%s.%N)
  $BIN train --config configs/synth-teacher.json --out /tmp/probe --steps 60 >/tmp/probe.log 2>&1 || { tail -5 /tmp/probe.log; exit 1; }
  e=$(date +%s.%N)
  rate=$(python3 -c "print(60/($e-$s))")
  steps=$(python3 -c "print(int($rate*${TRAIN_TOTAL_SECONDS:-660}/100)*100)")
  echo "$steps" > /tmp/teacher_steps
  echo "probe: $rate steps/s (incl. start-up) -> $steps steps"
  timeout "${TRAIN_SECONDS:-300}" $BIN train --config configs/synth-teacher.json --out $TRAIN_DIR --steps "$steps" >"$OUT/train1.log" 2>&1
  tail -c 400 "$OUT/train1.log"; echo
fi
if has resume; then
  steps=$(cat /tmp/teacher_steps)
  timeout "${TRAIN_SECONDS:-480}" $BIN train --config configs/synth-teacher.json --out $TRAIN_DIR --steps "$steps" --resume >"$OUT/train2.log" 2>&1
  tail -c 400 "$OUT/train2.log"; echo
fi
if has eval; then
  $BIN eval --model $TRAIN_DIR/model --num-samples ${EVAL_SAMPLES:-64} --batch 16 --seed 0 --device cuda \
     --json "$OUT/synthbench.json" --sheet "$OUT/contact_sheet.png" >"$OUT/eval.log" 2>&1; tail -25 "$OUT/eval.log"
  cp $TRAIN_DIR/loss.csv $TRAIN_DIR/loss.png "$OUT/" 2>/dev/null
  tar cf /tmp/model.tar -C $TRAIN_DIR model train_config.json && split -b 15m /tmp/model.tar "$OUT/model.tar.part-" && ls -la "$OUT"
fi
exit 0

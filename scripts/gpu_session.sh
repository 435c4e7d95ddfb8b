#!/usr/bin/env bash
# One GPU-machine session in phases (device tool; carry .deps and .golden). Phases:
#   build   configure + build everything in build-gpu with the machine's torch
#   test    whole ctest suite (CPU tests + -L gpu)
#   bench   bench_dit, bench_attention, bench_vae
#   train   train the teacher in TRAIN_DIR (TRAIN_CONFIG + TRAIN_STAGE, default stage 1 of the curriculum; its steps or
#           TEACHER_STEPS, optional INIT_FROM) for at most
#           TRAIN_SECONDS, then stop cleanly
#   resume  continue the teacher run for at most TRAIN_SECONDS
#   profile bench_dit --profile at 480p (time per section of the forward)
#   sweep   SynthBench of the trained model over SWEEP_SHIFT x SWEEP_GUIDANCE (SWEEP_SAMPLES prompts each)
#   benchtrain  bench_train: bf16 + torch AdamW, bf16 + FlatAdamW, bf16-lean + FlatAdamW (time per training step)
#   eval    SynthBench eval + contact sheet + conditioning and first-step probes + one --trace of the teacher, pack
#           model/ and logs into $OUT (PACK_MODEL=0: not the model); EVAL192_SEEDS="0 192" adds 192-prompt evals
#           (one JSON per seed; keep $OUT at 8 files or fewer: with the model packed that is two seeds);
#           EVAL_FLAGS (e.g. "--solver euler --eta 1") go to every eval and the trace of this phase
#   grid    192-prompt SynthBench of TRAIN_DIR's model (or EVAL_MODEL, e.g. models/synth-teacher) per seed in EVAL192_SEEDS (default "0 192 384") and per sampler
#           setting in EVAL_GRID ("label:flags;label:flags", e.g. "ea1:--solver euler --eta 1;unipc:"), all JSONs in
#           one $OUT/$GRID_TAR (default grid.tar; grid/<label>_s<seed>.json) and a summary line each
#   pack    only pack TRAIN_DIR's model, training config and loss curve into $OUT (15 MB tar parts), so that a model
#           trained in this call survives the machine going back before the next call
# Usage: PHASES="build test bench train" TRAIN_SECONDS=600 scripts/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PHASES=${PHASES:-"build test bench"}
TRAIN_DIR=${TRAIN_DIR:-/tmp/teacher}  # a second stage in the same session: another folder
BIN=${BIN:-build-gpu/cli/surgeon}  # BIN=...: another build (a dry run of the phases)
has() { [[ " $PHASES " == *" $1 "* ]]; }
# summary LABEL FILE: one line with the score, ground truth and metrics of a `surgeon eval --json` report.
summary() {
  python3 -c "import json,sys;j=json.load(open(sys.argv[2]));print('%s: score %.4f (ground truth %.4f)' % (sys.argv[1], j['score'], j['ground_truth_score']), {k: round(v,3) for k,v in j['metrics'].items()})" "$1" "$2" | tee -a "$OUT/session.log"
}
if has build; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/session.log"
  TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DSURGEON_VENDORED_DEPS="$PWD/.deps" -DSURGEON_GOLDEN_DIR="$PWD/.golden" >/tmp/configure.log 2>&1 || { tail -20 /tmp/configure.log; exit 1; }
  start=$(date +%s)
  # BUILD_TARGETS (e.g. "surgeon probe_conditioning probe_start"): only those, for a session that only trains and evaluates.
  cmake --build build-gpu -j 16 ${BUILD_TARGETS:+--target $BUILD_TARGETS} -- -k 0 >/tmp/build.log 2>&1 || { grep -E "error:|FAILED" /tmp/build.log | head -30; exit 1; }
  echo "build: $(( $(date +%s) - start )) s"
fi
if has test; then
  # TEST_ARGS="-L gpu" runs only the GPU-labelled tests; a failure stops the session (no training on a broken build).
  ctest --test-dir build-gpu -j 16 --timeout 300 --output-on-failure ${TEST_ARGS:-} >/tmp/ctest.log 2>&1; rc=$?
  cat /tmp/ctest.log >>"$OUT/session.log"
  grep -E "tests passed|\(Failed\)|Not Run" /tmp/ctest.log | head -30
  [ $rc -eq 0 ] || exit 1
fi
if has bench; then
  build-gpu/benchmarks/bench_dit --size 480p 720p --iters 5 2>&1 | tee "$OUT/bench_dit.txt" | tail -6
  [ -x build-gpu/benchmarks/bench_attention ] && build-gpu/benchmarks/bench_attention 2>&1 | tee "$OUT/bench_attention.txt" | tail -25
  [ -x build-gpu/benchmarks/bench_vae ] && build-gpu/benchmarks/bench_vae --device cuda 2>&1 | tee "$OUT/bench_vae.txt" | tail -8
fi
if has profile; then
  build-gpu/benchmarks/bench_dit --size 480p --iters 3 --profile 2>&1 | tee -a "$OUT/session.log" | tail -40
fi
if has benchtrain; then
  for run in "bf16 torch" "bf16 flat" "bf16-lean flat"; do set -- $run
    build-gpu/benchmarks/bench_train --config configs/synth-teacher-curriculum.json --stage 1 --iters 6 --dtype $1 --optimizer $2 2>&1 | grep -v "^ERROR\|^WARNING" | tee -a "$OUT/session.log"
  done
fi
if has train || has resume; then
  # TEACHER_STEPS sets the run's length (the cosine schedule's end); each call trains at most TRAIN_SECONDS and
  # stops cleanly (checkpoint + model export); the next call continues with the resume phase.
  r=""; has resume && r="--resume"
  init=""; [ -n "${INIT_FROM:-}" ] && init="--init-from $INIT_FROM"
  steps=""; [ -n "${TEACHER_STEPS:-}" ] && steps="--steps $TEACHER_STEPS"  # default: the config's
  [ -n "${TRAIN_DTYPE:-}" ] && steps="$steps --dtype $TRAIN_DTYPE"
  stage=""; [ -n "${TRAIN_STAGE-1}" ] && stage="--stage ${TRAIN_STAGE-1}"  # TRAIN_STAGE= for a plain config
  $BIN train --config "${TRAIN_CONFIG:-configs/synth-teacher-curriculum.json}" $stage --out $TRAIN_DIR $steps $r $init \
     --time-limit "${TRAIN_SECONDS:-300}" >>"$OUT/train.log" 2>&1 || { tail -c 600 "$OUT/train.log"; exit 1; }
  tail -c 300 "$OUT/train.log"; echo
fi
# pack_model: TRAIN_DIR's model, training config and loss curve as one tar in 15 MB parts (at most 8 files come back).
pack_model() {
  tar cf /tmp/model.tar -C $TRAIN_DIR model train_config.json loss.csv loss.png && split -b 15m /tmp/model.tar "$OUT/model.tar.part-"
}
if has pack; then pack_model && ls -la "$OUT"; fi
if has eval; then
  $BIN eval --model $TRAIN_DIR/model --num-samples ${EVAL_SAMPLES:-64} --batch 16 --seed 0 --device cuda ${EVAL_FLAGS:-} \
     --json "$OUT/synthbench.json" --sheet "$OUT/contact_sheet.png" >/tmp/eval.log 2>&1; tail -25 /tmp/eval.log
  cat /tmp/eval.log >>"$OUT/session.log"
  # Does the model use each attribute of the prompt (loss with the true prompt vs one attribute changed)?
  build-gpu/benchmarks/probe_conditioning $TRAIN_DIR/model 32 cuda 2>&1 | tee -a "$OUT/session.log"
  # Where the sampler's first step puts "moving left/right/up/down" objects (direction known from the start?).
  [ -x build-gpu/benchmarks/probe_start ] && build-gpu/benchmarks/probe_start $TRAIN_DIR/model 64 cuda 2>&1 | tee -a "$OUT/session.log"
  # The x0 prediction at every sampling step for the sheet's row-4 prompt and noise (a one-object "moving left"
  # prompt; stage 12 drew it twice: docs/history/teacher-training.md).
  $BIN generate --model $TRAIN_DIR/model --prompt "a large blue circle moving left fast on a black to purple horizontal gradient background" \
     --seed 3 --device cuda ${EVAL_FLAGS:-} --out /tmp/trace_video.png --trace "$OUT/trace.png" 2>&1 | tail -1 | tee -a "$OUT/session.log"
  # EVAL192_SEEDS="0 192": also SynthBench on 192 prompts per seed (seed 0 and 192 are disjoint prompt sets; seed 1
  # would share 191 of seed 0's), one JSON each and a summary line.
  for s in ${EVAL192_SEEDS:-}; do
    $BIN eval --model $TRAIN_DIR/model --num-samples 192 --batch 32 --seed $s --device cuda ${EVAL_FLAGS:-} --json "$OUT/eval192_s$s.json" >/dev/null 2>&1
    summary "192 prompts, seed $s" "$OUT/eval192_s$s.json"
  done
  # At most 8 files come back: the model, its training config and loss curve travel as one tar in 15 MB parts.
  [ "${PACK_MODEL:-1}" = 0 ] || pack_model
  ls -la "$OUT"
fi
if has grid; then
  rm -rf /tmp/grid && mkdir -p /tmp/grid  # only this call's reports travel back
  IFS=';' read -ra settings <<<"${EVAL_GRID:-default:}"
  for setting in "${settings[@]}"; do
    label=${setting%%:*}; flags=${setting#*:}
    for s in ${EVAL192_SEEDS:-0 192 384}; do
      start=$(date +%s)
      $BIN eval --model "${EVAL_MODEL:-$TRAIN_DIR/model}" --num-samples 192 --batch 32 --seed $s --device cuda $flags \
         --json "/tmp/grid/${label}_s$s.json" >/dev/null 2>&1 || { echo "eval $label seed $s failed"; continue; }
      summary "$label ($flags), 192 prompts, seed $s, $(( $(date +%s) - start )) s" "/tmp/grid/${label}_s$s.json"
    done
  done
  tar cf "$OUT/${GRID_TAR:-grid.tar}" -C /tmp grid
fi
if has sweep; then
  for sh in ${SWEEP_SHIFT:-3 1}; do for g in ${SWEEP_GUIDANCE:-3 4 6}; do
    $BIN eval --model $TRAIN_DIR/model --num-samples ${SWEEP_SAMPLES:-64} --batch 16 --seed 0 --device cuda --guidance $g \
       --shift $sh --json /tmp/sweep.json >/dev/null 2>&1
    summary "shift $sh guidance $g" /tmp/sweep.json
  done; done
fi
exit 0

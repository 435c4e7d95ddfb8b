#!/usr/bin/env bash
# The surgery on the GPU machine (device tool; carry .deps and .golden; build first with
# `PHASES=build scripts/gpu_session.sh` in the same call or an earlier call on the same warm machine). Phases:
#   gputest    the GPU-labelled tests and the attention/distill tests
#   benchattn  bench_attention at 480p and 720p (JSON rows into $OUT)
#   surgery    `surgeon surgery --preset full` on the bundled teacher into $SURG (default /tmp/surg), budget $BUDGET
#              (default 0.5); report, pictures and the student come back as surgery.tar
#   eval576    SynthBench of the teacher and of $SURG's student on the three 192-prompt sets (seeds 0, 192, 384),
#              same prompts and noise; all reports in eval576.tar
#   ablate     the ablations of issue 16 on 192 prompts (seed 0): see the comments below; reports in ablate.tar
# Usage: PHASES="surgery eval576" scripts/gpu_surgery.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PHASES=${PHASES:-"surgery"}
BIN=${BIN:-build-gpu/cli/surgeon}
SURG=${SURG:-/tmp/surg}
T=models/synth-teacher
has() { [[ " $PHASES " == *" $1 "* ]]; }
summary() {
  python3 -c "import json,sys;j=json.load(open(sys.argv[2]));print('%s: score %.4f' % (sys.argv[1], j['score']), {k: round(v,3) for k,v in j['metrics'].items()}, ('psnr %.2f ssim %.4f' % (j['psnr'], j['ssim'])) if 'psnr' in j else '')" "$1" "$2" | tee -a "$OUT/surgery.log"
}
ev() {  # ev LABEL MODEL SEED [extra flags]: 192-prompt SynthBench into /tmp/ev/LABEL_sSEED.json
  local label=$1 model=$2 seed=$3; shift 3
  mkdir -p /tmp/ev
  $BIN eval --model "$model" --num-samples 192 --batch 32 --seed "$seed" --device cuda "$@" --json "/tmp/ev/${label}_s$seed.json" >/dev/null 2>&1 \
    && summary "$label seed $seed" "/tmp/ev/${label}_s$seed.json" || echo "eval $label seed $seed failed" | tee -a "$OUT/surgery.log"
}
if has gputest; then
  ctest --test-dir build-gpu -j 8 --timeout 300 --output-on-failure -L gpu >/tmp/gputest.log 2>&1; echo "gpu tests rc $?"
  ctest --test-dir build-gpu -j 8 --timeout 300 --output-on-failure -R 'HybridAttention|Distill|FeatureMap' >>/tmp/gputest.log 2>&1; echo "attention tests rc $?"
  grep -E "tests passed|\(Failed\)|Not Run" /tmp/gputest.log | head -20; cp /tmp/gputest.log "$OUT/"
fi
if has benchattn; then
  build-gpu/benchmarks/bench_attention --size 480p 720p --json "$OUT/bench_attention.json" 2>&1 | tee "$OUT/bench_attention.txt" | tail -40
fi
if has surgery; then
  start=$(date +%s)
  $BIN surgery --teacher $T --budget "${BUDGET:-0.5}" --preset full --device cuda --out $SURG ${SURGERY_FLAGS:-} >/tmp/surgery_run.log 2>&1
  rc=$?; tail -c 1500 /tmp/surgery_run.log; echo "surgery rc $rc, $(( $(date +%s) - start )) s" | tee -a "$OUT/surgery.log"
  cp /tmp/surgery_run.log "$OUT/"
  # Back: the student (OUT itself, in the teacher's dtype), the report and pictures, stage 1's tables and loss, the plan.
  (cd $SURG && tar cf "$OUT/surgery.tar" --exclude=work . -C $SURG work/stage1/block_errors.json work/stage1/block_errors_init.json \
     work/stage1/loss.csv work/stage1/errors.png work/main/plan.json work/main/stage3/loss.csv work/main/stage3/loss.png 2>/dev/null)
  ls -la "$OUT/surgery.tar"
fi
if has eval576; then
  for s in 0 192 384; do ev teacher $T $s; ev student $SURG $s --reference-model $T; done
  tar cf "$OUT/eval576.tar" -C /tmp ev
fi
if has ablate; then
  # Every row: 192 prompts at seed 0, same noise. Students without stage 3 unless said.
  A=/tmp/ablate; mkdir -p $A
  plan=$SURG/work/main/plan.json
  # with vs without stage 3 (the chosen plan and stage-1 phi, no fine-tuning)
  ev no_stage3 $SURG/work/main/student-init 0
  # stage 1 vs none: the same plan with phi drawn from the seed (calibrated scale only at construction)
  $BIN student --teacher $T --plan $plan --out $A/no_stage1 >/dev/null && ev no_stage1 $A/no_stage1 0
  # knapsack vs the best uniform plan at the same budget: from the surgery's curve (work/curve), 0.5
  for d in $SURG/work/curve/*50; do [ -d "$d" ] && ev "curve_$(basename $d)" "$d/stage3/model" 0; done
  # hybrid vs linear-only at equal FLOPs; value vs score loss; max vs lse; trajectories vs noised ground truth:
  # stage 1 re-run with each variant (16 prompts), knapsack at the same budget, no stage 3.
  for v in "value:" "score:--loss score" "max:--options examples/distill-options-max.json" "noised:--data noised --prompts 16" \
           "linear:--options examples/distill-options-linear.json"; do
    label=${v%%:*}; flags=${v#*:}
    $BIN distill --teacher $T --options examples/distill-options.json --prompts 16 --heldout-prompts 2 --batch 4 --updates 40 \
      --device cuda --out $A/d_$label $flags >/dev/null 2>&1 || { echo "distill $label failed"; continue; }
    $BIN plan knapsack --model $T --errors $A/d_$label/block_errors.json --budget "${BUDGET:-0.5}" --grid 16x16x16 --out $A/p_$label.json >/dev/null 2>&1 \
      || { echo "knapsack $label failed (budget not reachable?)"; continue; }
    $BIN student --teacher $T --plan $A/p_$label.json --phi $A/d_$label --out $A/s_$label >/dev/null && ev "$label" $A/s_$label 0
  done
  for d in $A/d_*; do cp $d/block_errors.json /tmp/ev/errors_$(basename $d).json 2>/dev/null; done
  tar cf "$OUT/ablate.tar" -C /tmp ev
fi
ls -la "$OUT"

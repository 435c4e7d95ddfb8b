#!/usr/bin/env bash
# Quality experiments of the surgery on the GPU machine, run in the background so that they outlive one device call
# (a process in its own session runs on until the machine goes back). Build first (PHASES=build BUILD_TARGETS=surgeon
# scripts/gpu_session.sh). Verbs:
#   start   launch every job below in the background (setsid), return at once
#   wait    wait until all jobs are done or WAIT seconds (default 540) have passed; print the summary so far
#   pack    results (eval JSONs, reports, pictures, logs) and the best student into $OUT in 15 MB parts
# Jobs (JOBS="S1 S2 H ablate" by default; all on the bundled teacher, budget 0.5, full preset, $STEPS stage-3 steps):
#   S1   surgeon surgery with the full preset's default options (hybrid, chunked C4 / C2o1, linear)
#   S2   surgeon surgery with the hybrid + linear options only (examples/distill-options.json: no chunks)
#   H    hybrid everywhere: R2 in blocks 0-3, R4 in 4-7 (49.4% FLOPs), phi from S2's stage 1, same stage 3
#   ablations: stage 1 variants on 16 prompts (value, score, max, noised ground truth, linear-only options), knapsack at
#        the budget, no stage 3; 192 prompts at seed 0
#   each student: SynthBench on the three 192-prompt sets (seeds 0, 192, 384) against the teacher's videos
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=${BIN:-$PWD/build-gpu/cli/surgeon}
Q=${Q:-/tmp/q}
T=models/synth-teacher
STEPS=${STEPS:-2000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3}
verb=${1:-start}

score() { python3 -c "import json,sys;print('%.4f' % json.load(open(sys.argv[1]))['score'])" "$1" 2>/dev/null || echo "-"; }
ev() {  # ev LABEL MODEL SEED [flags]
  local label=$1 model=$2 seed=$3; shift 3
  $BIN eval --model "$model" --num-samples 192 --batch 32 --seed "$seed" --device cuda "$@" \
    --json "$Q/ev/${label}_s$seed.json" >"$Q/logs/ev_${label}_s$seed.log" 2>&1 || echo "eval $label $seed failed" >>"$Q/logs/errors"
}
ev576() { local label=$1 model=$2; ev "$label" "$model" 0 --reference-model $T & ev "$label" "$model" 192 --reference-model $T & ev "$label" "$model" 384 --reference-model $T & wait; }

job_surgery() {  # job_surgery LABEL [surgery flags]
  local label=$1; shift
  local t0=$(date +%s)
  $BIN surgery --teacher $T --budget 0.5 --preset full --device cuda --finetune-steps "$STEPS" --out "$Q/$label" "$@" \
    >"$Q/logs/surgery_$label.log" 2>&1 || { echo "surgery $label failed" >>"$Q/logs/errors"; return; }
  echo "$label surgery $(( $(date +%s) - t0 )) s" >>"$Q/logs/times"
  ev576 "$label" "$Q/$label"
  echo "$label done $(( $(date +%s) - t0 )) s" >>"$Q/logs/times"
}
job_hybrid() {
  local t0=$(date +%s)
  while [ ! -f "$Q/S2/work/stage1/block_errors.json" ]; do
    sleep 5; grep -qs "S2 surgery\|surgery S2" "$Q/logs/times" "$Q/logs/errors" && { echo "H: no stage 1 of S2" >>"$Q/logs/errors"; return; }
  done
  python3 - "$Q/H_plan.json" <<'PY'
import json, sys
fm = {"kind": "poly", "head_dim": 64, "hidden": 128, "parts": 2}
blocks = [{"block": b, "kind": "hybrid", "rate": 2 if b < 4 else 4, "stabilizer": "lse", "feature_map": fm} for b in range(8)]
json.dump({"format": "surgeon.attention_plan", "version": 1, "num_blocks": 8, "blocks": blocks}, open(sys.argv[1], "w"), indent=1)
PY
  $BIN student --teacher $T --plan "$Q/H_plan.json" --phi "$Q/S2/work/stage1" --out "$Q/H_init" >"$Q/logs/H.log" 2>&1 \
    && $BIN finetune --student "$Q/H_init" --out "$Q/H_ft" --steps "$STEPS" --batch 8 --lr 1e-4 --teacher $T --teacher-weight 1 \
         --warmup 20 --checkpoint-every 400 --device cuda --dtype bf16 >>"$Q/logs/H.log" 2>&1 \
    || { echo "H failed" >>"$Q/logs/errors"; return; }
  echo "H finetune $(( $(date +%s) - t0 )) s" >>"$Q/logs/times"
  ev576 H "$Q/H_ft/model"
  echo "H done $(( $(date +%s) - t0 )) s" >>"$Q/logs/times"
}
job_ablate() {
  local A=$Q/ablate; mkdir -p $A
  ev teacher $T 0   # same prompts and noise as the stored teacher report: a check that reuse is exact
  for v in "value:" "score:--loss score" "max:--options examples/distill-options-max.json" "noised:--data noised" \
           "linear:--options examples/distill-options-linear.json"; do
    local label=${v%%:*} flags=${v#*:}
    ( $BIN distill --teacher $T --options examples/distill-options.json --prompts 16 --heldout-prompts 2 --batch 4 --updates 40 \
        --device cuda --out $A/d_$label $flags >"$Q/logs/distill_$label.log" 2>&1 \
      && $BIN plan knapsack --model $T --errors $A/d_$label/block_errors.json --budget 0.5 --grid 16x16x16 --out $A/p_$label.json >>"$Q/logs/distill_$label.log" 2>&1 \
      && $BIN student --teacher $T --plan $A/p_$label.json --phi $A/d_$label --out $A/s_$label >>"$Q/logs/distill_$label.log" 2>&1 \
      && ev "abl_$label" $A/s_$label 0 && cp $A/d_$label/block_errors.json "$Q/ev/errors_$label.json" && cp $A/p_$label.json "$Q/ev/plan_$label.json" ) \
      || echo "ablation $label failed" >>"$Q/logs/errors" &
    [ "$label" = score ] || [ "$label" = noised ] && wait  # at most two distills at once (GPU memory)
  done
  wait
  echo "ablate done" >>"$Q/logs/times"
}

case $verb in
start)
  rm -rf "$Q"; mkdir -p "$Q/logs" "$Q/ev"
  setsid nohup "$0" jobs >"$Q/logs/main.log" 2>&1 < /dev/null &
  sleep 2; echo "started; jobs in $Q" ;;
jobs)
  # JOBS picks the jobs (default: all). One full-preset surgery holds up to ~45 GB of GPU memory and each ablation
  # distill ~10 GB: S1 and S2 together with the ablations ran out of memory on an 80 GB H100.
  for j in ${JOBS:-S1 S2 H ablate}; do
    case $j in
      S1) job_surgery S1 & ;;
      S2) job_surgery S2 --options examples/distill-options.json & ;;
      H) job_hybrid & ;;
      ablate) job_ablate & ;;
    esac
  done
  wait; touch "$Q/done" ;;
wait)
  end=$(( $(date +%s) + ${WAIT:-540} ))
  while [ ! -f "$Q/done" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 10; done
  [ -f "$Q/done" ] && echo "all jobs done" || echo "still running"
  cat "$Q/logs/times" "$Q/logs/errors" 2>/dev/null
  for f in "$Q"/ev/*.json; do case $f in *errors_*|*plan_*) continue;; esac; echo "$(basename $f .json) $(score $f)"; done
  for l in S1 S2; do tail -c 300 "$Q/logs/surgery_$l.log" 2>/dev/null | tr '\r' '\n' | tail -2; done
  tail -c 300 "$Q/logs/H.log" 2>/dev/null | tr '\r' '\n' | tail -2 ;;
pack)
  cd "$Q"
  tar cf "$OUT/results.tar" ev logs H_plan.json $(for l in S1 S2; do ls -d $l/report* $l/plan.json $l/work/stage1/block_errors*.json $l/work/stage1/errors.png $l/work/main/plan.json $l/work/main/stage3/loss.csv 2>/dev/null; done) H_ft/loss.csv 2>/dev/null
  best=$(python3 - <<'PY'
import json, glob, statistics
best, arg = -1, ""
for lab in ["S1", "S2", "H"]:
    fs = sorted(glob.glob(f"ev/{lab}_s*.json"))
    if len(fs) != 3: continue
    s = statistics.mean(json.load(open(f))["score"] for f in fs)
    if s > best: best, arg = s, lab
print(arg)
PY
)
  echo "best: $best"
  for lab in ${PACK:-$best}; do
    d=$lab; [ "$lab" = H ] && d=H_ft/model
    [ -d "$d" ] && tar cf - --exclude=work -C "$d" . | split -b 15m - "$OUT/student_$lab.tar.part"
  done
  ls -la "$OUT" ;;
esac

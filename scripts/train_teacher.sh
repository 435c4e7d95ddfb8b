#!/usr/bin/env bash
# Reproduce the bundled teacher: stages 1-4, 8-12 and 14 of models/synth-teacher/training/README.md in one
# command (about 90 min on one H200; stages 5-7 and 13 were side branches, not on the shipped model's path). Each stage resumes from its checkpoint if the script was killed, and starts from
# the previous stage's model otherwise; a finished stage returns at once.
# Usage: scripts/train_teacher.sh [RUNS_DIR] [--install]   (--install copies the result into models/synth-teacher)
set -euo pipefail
cd "$(dirname "$0")/.."
R=runs INSTALL=0
for a in "$@"; do case $a in --install) INSTALL=1 ;; -*) echo "error: unknown option $a" >&2; exit 2 ;; *) R=$a ;; esac; done
BIN=${SURGEON:-build/cli/surgeon}
[ -x "$BIN" ] || { echo "error: $BIN not built (cmake --build build, or set SURGEON=path/to/surgeon)" >&2; exit 1; }
stage() {  # stage N CONFIG [extra args]; --resume continues a killed stage and is a no-op on a finished one
  local n=$1 cfg=$2; shift 2
  echo "stage $n: $cfg"
  "$BIN" train --config "$cfg" --out "$R/stage$n" --resume "$@"
}
stage 1 configs/synth-teacher.json --steps 4800
stage 2 configs/synth-teacher-stage2.json --init-from "$R/stage1/model"
stage 3 configs/synth-teacher-stage3.json --init-from "$R/stage2/model"
stage 4 configs/synth-teacher-stage4.json --init-from "$R/stage3/model"
stage 8 configs/synth-teacher-stage8.json --init-from "$R/stage4/model"
stage 9 configs/synth-teacher-stage9.json --init-from "$R/stage8/model"
stage 10 configs/synth-teacher-stage10.json --init-from "$R/stage9/model"
stage 11 configs/synth-teacher-stage11.json --init-from "$R/stage10/model"
stage 12 configs/synth-teacher-stage12.json --init-from "$R/stage11/model"
stage 14 configs/synth-teacher-stage14.json --init-from "$R/stage12/model"
"$BIN" eval --model "$R/stage14/model" --num-samples 64 --batch 16 --seed 0 --json "$R/stage14/synthbench.json" \
  --sheet "$R/stage14/contact_sheet.png"
if [ $INSTALL = 1 ]; then cp "$R"/stage14/model/* models/synth-teacher/; echo "installed into models/synth-teacher"; fi

#!/usr/bin/env bash
# Reproduce the bundled teacher: the stages of configs/synth-teacher-curriculum.json in one command (about 90 min
# on one H200; docs/history/teacher-training.md says what each stage did). Each stage resumes from its checkpoint
# if the script was killed, and starts from the previous stage's model otherwise; a finished stage returns at once.
# Usage: scripts/train_teacher.sh [RUNS_DIR] [--install]   (--install copies the result into models/synth-teacher)
set -euo pipefail
cd "$(dirname "$0")/.."
R=runs INSTALL=0 CURRICULUM=configs/synth-teacher-curriculum.json
for a in "$@"; do case $a in --install) INSTALL=1 ;; -*) echo "error: unknown option $a" >&2; exit 2 ;; *) R=$a ;; esac; done
BIN=${SURGEON:-build/cli/surgeon}
[ -x "$BIN" ] || { echo "error: $BIN not built (cmake --build build, or set SURGEON=path/to/surgeon)" >&2; exit 1; }
# The stage names, in order, from the curriculum (one "stage" entry per line of its "stages" list).
STAGES=$(sed -n 's/^ *{"stage": "\([^"]*\)".*/\1/p' "$CURRICULUM")
prev=""
for n in $STAGES; do  # --resume continues a killed stage and is a no-op on a finished one
  echo "stage $n"
  init=(); [ -n "$prev" ] && init=(--init-from "$R/stage$prev/model")
  "$BIN" train --config "$CURRICULUM" --stage "$n" --out "$R/stage$n" --resume "${init[@]}"
  prev=$n
done
"$BIN" eval --model "$R/stage$prev/model" --num-samples 64 --batch 16 --seed 0 --json "$R/stage$prev/synthbench.json" \
  --sheet "$R/stage$prev/contact_sheet.png"
if [ $INSTALL = 1 ]; then cp "$R/stage$prev"/model/* models/synth-teacher/; echo "installed into models/synth-teacher"; fi

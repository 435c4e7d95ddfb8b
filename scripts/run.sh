#!/usr/bin/env bash
# The main job on the bundled default: builds Surgeon (scripts/setup.sh), then
#  1. the bundled tiny Wan2.1 checkpoint (../shared/golden/wan-t2v-tiny): inspect, one forward and a 6-step UniPC
#     sampling run with CFG, compared against the official code's trace;
#  2. the bundled synthetic-world teacher (models/synth-teacher): one 16-frame video from a prompt
#     (UniPC 20 steps, CFG 4) as out/teacher.mp4 and its contact sheet out/teacher.png (about 1 min each on 2 cores);
#  3. the surgery's quick preset on that teacher (stages 1 -> 2 -> 3 and a teacher-vs-student report in out/surgery:
#     report.md, sheet.png, errors.png, curve.png; minutes on 2 cores), then the same prompt from the bundled student
#     (models/synth-student, the full preset's result at 48% of the teacher's attention FLOPs) as out/student.png.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
BIN=${SURGEON_BUILD_DIR:-build}/cli/surgeon
GOLDEN=${SURGEON_GOLDEN:-../shared/golden}
OUT=${SURGEON_OUT:-out}
mkdir -p "$OUT"
"$BIN" inspect "$GOLDEN/wan-t2v-tiny" --no-tensors
"$BIN" forward --model "$GOLDEN/wan-t2v-tiny" --inputs "$GOLDEN/dit_forward.safetensors" --out "$OUT/forward.safetensors"
"$BIN" sample --model "$GOLDEN/wan-t2v-tiny" --inputs "$GOLDEN/sampler_official_unipc.safetensors" \
  --out "$OUT/sample.safetensors" --solver unipc --steps 6 --shift 5 --guidance 5 --trace
"$BIN" compare "$OUT/sample.safetensors" out.latents "$GOLDEN/sampler_official_unipc.safetensors" final
PROMPT=${SURGEON_PROMPT:-"a large red circle moving right fast on a gray background"}
"$BIN" generate --model models/synth-teacher --prompt "$PROMPT" --seed 3 --out "$OUT/teacher.mp4"
"$BIN" generate --model models/synth-teacher --prompt "$PROMPT" --seed 3 --out "$OUT/teacher.png"
"$BIN" surgery --teacher models/synth-teacher --budget 0.5 --preset quick --out "$OUT/surgery"
"$BIN" generate --model models/synth-student --prompt "$PROMPT" --seed 3 --out "$OUT/student.png"

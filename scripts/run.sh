#!/usr/bin/env bash
# The main job on the bundled default: builds Surgeon (scripts/setup.sh), then runs the end-to-end path that
# exists today on the bundled tiny Wan2.1 checkpoint (../shared/golden/wan-t2v-tiny): inspect, one forward,
# and a 6-step UniPC sampling run with CFG, compared against the official code's trace.
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

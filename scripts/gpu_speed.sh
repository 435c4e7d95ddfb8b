#!/usr/bin/env bash
# Our teacher's bf16 DiT forward (fused block path off / on) and diffusers' WanTransformer3DModel in the same call on
# the GPU machine, then the ratios. Run after `PHASES=build scripts/gpu_session.sh` (build-gpu); carry the peers
# as the ignored folder .peers (a copy of ../shared/peers) and .deps.
#   SIZES="480p 720p"  sizes for bench_dit (the diffusers script always runs 480p and 720p)
#   ITERS=5            timed forwards per setting (after 2 warm-ups)
#   FUSED="none all"   fused-path settings timed by bench_dit (SURGEON_DIT_FUSED values)
#   PLAN=FILE          also time a plan (bench_dit --plan FILE) with the same settings
#   COMPILED=1         also diffusers with compile_repeated_blocks (compiling takes minutes)
#   PROFILE=1          bench_dit --profile: time per section of the forward for each setting (synchronising)
# Results: $OUT/bench_dit.json, $OUT/diffusers_wan.json (+ diffusers_compiled.json), a ratio table printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PEERS=${PEERS:-.peers}
BENCH=${BENCH:-build-gpu/benchmarks/bench_dit}
SIZES=${SIZES:-480p 720p}
export SURGEON_GIT_COMMIT=${SURGEON_GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
[ -x "$BENCH" ] || { echo "error: $BENCH not built (run PHASES=build scripts/gpu_session.sh first)"; exit 1; }

"$BENCH" --size $SIZES --iters "${ITERS:-5}" --fused ${FUSED:-none all} ${PROFILE:+--profile} --json "$OUT/bench_dit.json" 2>&1 \
  | tee "$OUT/bench_dit.txt" | grep -v "^ERROR\|^WARNING" | tail -${TAIL_LINES:-8}
if [ -n "${PLAN:-}" ]; then
  "$BENCH" --size $SIZES --iters "${ITERS:-5}" --fused ${FUSED:-none all} --plan "$PLAN" --json "$OUT/bench_dit_plan.json" 2>&1 | tail -6
fi

if [ -f "$PEERS/peer_diffusers_wan.py" ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site "$PEERS"/diffusers-*.whl >/dev/null 2>&1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  OUT="$OUT" python3 "$PEERS/peer_diffusers_wan.py" 2>&1 | grep -v Warning | tail -3
  [ "${COMPILED:-0}" = 1 ] && OUT="$OUT" python3 "$PEERS/peer_diffusers_wan_compiled.py" 2>&1 | grep -v Warning | tail -3
else
  echo "no peers at $PEERS (copy ../shared/peers there and carry it): ours only"
fi

# Ratios from the JSON files of this call.
[ -f "$OUT/bench_dit.json" ] || { echo "no $OUT/bench_dit.json (no GPU here, or bench_dit failed): no ratios"; exit 1; }
python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
rows = json.load(open(os.path.join(out, "bench_dit.json")))
peer = {}
p = os.path.join(out, "diffusers_wan.json")
if os.path.exists(p):
    peer = {k: v[0] for k, v in json.load(open(p)).items()}
comp = {}
p = os.path.join(out, "diffusers_compiled.json")
if os.path.exists(p):
    comp = {"480p": json.load(open(p)).get("compiled")}
print("\n%s, commit %s" % (rows[0]["gpu"], rows[0]["commit"]))
print("| size | fused | ours ms | attention ms | non-attention ms | diffusers eager ms | diffusers / ours | "
      "non-attention ours / diffusers' | diffusers compiled / ours |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    d = peer.get(r["size"])
    c = comp.get(r["size"])
    # diffusers runs the same cuDNN attention: its non-attention time is its forward minus our attention time.
    na = (r["non_attention_ms"] / (d - r["attention_ms"])) if d and r["attention_ms"] > 0 else None
    print("| %s | %s | %.1f | %.1f | %.1f | %s | %s | %s | %s |" % (
        r["size"], r["fused"], r["median_ms"], r["attention_ms"], r["non_attention_ms"],
        "%.1f" % d if d else "-", "%.3f" % (d / r["median_ms"]) if d else "-",
        "%.3f" % na if na else "-", "%.3f" % (c / r["median_ms"]) if c else "-"))
EOF

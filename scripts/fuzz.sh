#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang + ASan + UBSan, into build-fuzz) and runs each for SECONDS
# (default 60), one after the other, printing executions and crashes per harness.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]        e.g. scripts/fuzz.sh 5 plan pth
# Corpora grow in build-fuzz/corpus/<harness> (seeded from the fixtures each run); findings are written to
# build-fuzz/findings/<harness>/ (crash-*, leak-*, timeout-*, oom-*). Exit status 1 when any harness found one.
# Environment: SURGEON_FUZZ_DIR (build folder), SURGEON_NICE (default 10), SURGEON_FUZZ_JOBS (build jobs, 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_EACH=${1:-60}
shift || true
DIR=${SURGEON_FUZZ_DIR:-build-fuzz}
NICE=${SURGEON_NICE:-10}
VENV=${SURGEON_VENV:-$HOME/.cache/surgeon/venv}
GOLDEN=${SURGEON_GOLDEN_DIR:-$ROOT/../shared/golden}
ALL=(safetensors_header checkpoint_index pth pickle model_config plan block_errors train_config prompt umt5_tokenizer)
HARNESSES=("$@")
[ ${#HARNESSES[@]} -eq 0 ] && HARNESSES=("${ALL[@]}")

if [ ! -f "$DIR/build.ninja" ]; then
  TORCH_PREFIX=$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  cmake -S fuzz -B "$DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" >/dev/null
fi
targets=()
for h in "${HARNESSES[@]}"; do targets+=("fuzz_$h"); done
nice -n "$NICE" cmake --build "$DIR" -j "${SURGEON_FUZZ_JOBS:-2}" --target "${targets[@]}"

# Seed corpora: the fixtures each harness's parser reads in the suite.
seed() {  # seed HARNESS FILE...
  local d="$DIR/corpus/$1"
  shift
  mkdir -p "$d"
  for f in "$@"; do [ -f "$f" ] && cp -f "$f" "$d/seed-$(basename "$(dirname "$f")")-$(basename "$f")"; done
  return 0
}
# Small files: libFuzzer's speed falls with input size, so seeds are the fixtures' small cousins.
"$VENV/bin/python" - "$DIR/corpus" "$GOLDEN" <<'PY'
import json, os, struct, sys, torch
out, golden = sys.argv[1], sys.argv[2]
os.makedirs(out + '/safetensors_header', exist_ok=True); os.makedirs(out + '/pth', exist_ok=True)
def st(name, tensors, meta=None):
    h, data = {}, b''
    if meta: h['__metadata__'] = meta
    for k, (dt, shape, nbytes) in tensors.items():
        h[k] = {'dtype': dt, 'shape': shape, 'data_offsets': [len(data), len(data) + nbytes]}; data += bytes(nbytes)
    j = json.dumps(h).encode(); j += b' ' * ((8 - len(j) % 8) % 8)
    open(os.path.join(out, 'safetensors_header', 'seed-' + name), 'wb').write(struct.pack('<Q', len(j)) + j + data)
st('f32', {'blocks.0.self_attn.q.weight': ('F32', [4, 4], 64), 'blocks.0.self_attn.q.bias': ('F32', [4], 16)},
   {'format': 'pt'})
st('mixed', {'a': ('BF16', [2, 3], 12), 'b': ('I64', [1], 8), 'c': ('BOOL', [0], 0), 'd': ('U8', [], 1),
             'e': ('F16', [2, 1, 2], 8), 'f': ('F64', [1], 8), 'g': ('I32', [2], 8), 'h': ('I8', [3], 3)})
st('empty', {})
# The real headers of the golden files, with a data section of the right size but zeros, cut to 16 KiB.
for f in ['dit_forward.safetensors', 'wan-t2v-tiny/diffusion_pytorch_model.safetensors']:
    p = os.path.join(golden, f)
    if os.path.exists(p):
        b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
        if n < 12000:
            open(os.path.join(out, 'safetensors_header', 'seed-golden-' + os.path.basename(f)), 'wb').write(b[:8 + n])
def pth(name, obj):
    torch.save(obj, os.path.join(out, 'pth', 'seed-' + name + '.pth'))
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
pth('dict', {'w': base, 'b': torch.ones(2, dtype=torch.bfloat16)})
pth('views', {'t': base.t(), 'row': base[1], 'step': base[:, ::2], 'int': torch.tensor([1, 2], dtype=torch.int64)})
pth('nested', {'model': {'layer': [base[0], (base[1], base[2])]}, 'step': 3, 'name': 'x'})
pth('shared', [base, base[1:], base.view(-1)])
PY
seed checkpoint_index "$GOLDEN"/wan-t2v-tiny-sharded/*.index.json models/*/*.index.json
mkdir -p "$DIR/corpus/pickle"
"$VENV/bin/python" - "$DIR/corpus/pickle" tests/data/umt5-tiny/*.pth "$GOLDEN"/wan-vae-tiny/*.pth <<'PY'
import sys, zipfile, os
out = sys.argv[1]
for p in sys.argv[2:]:
    with zipfile.ZipFile(p) as z:
        for n in z.namelist():
            if n.endswith('.pkl'):
                open(os.path.join(out, 'seed-' + os.path.basename(p) + '.pkl'), 'wb').write(z.read(n))
PY
seed model_config "$GOLDEN"/*/config.json "$GOLDEN"/*/transformer/config.json models/*/config.json
seed plan models/*/plan.json
printf '{"version":1,"blocks":[{"block":0,"kind":"hybrid","rate":4,"feature_map":{"kind":"poly","hidden":128,"parts":2,"head_dim":64},"stabilizer":"max"},{"block":1,"kind":"chunked","chunk":2,"overlap":1,"causal":true,"feature_map":{"kind":"hedgehog"}},{"block":2,"kind":"linear","feature_map":{"kind":"elu1"}}]}' \
  > "$DIR/corpus/plan/seed-kinds.json"
seed block_errors examples/block-errors.json models/*/report/block_errors*.json examples/distill-options*.json
seed train_config configs/*.json models/*/training/train_config.json
mkdir -p "$DIR/corpus/prompt" "$DIR/corpus/umt5_tokenizer"
for p in "a red circle moves left" "a large blue square moves right fast on a navy background" \
         "a small green triangle bounces and a red circle moves up slowly."; do
  echo -n "$p" > "$DIR/corpus/prompt/seed-$(echo "$p" | md5sum | cut -c1-8)"
done
"$VENV/bin/python" - "$DIR/corpus/umt5_tokenizer" tests/data/umt5-tiny/prompts.json <<'PY'
import sys, json, os
for i, p in enumerate(json.load(open(sys.argv[2]))):
    open(os.path.join(sys.argv[1], 'seed-%d' % i), 'w').write(p)
PY

# Earlier findings (each also a regression test in the suite) seed their harness.
for d in fuzz/regressions/*/; do
  h=$(basename "$d"); mkdir -p "$DIR/corpus/$h"; cp -f "$d"* "$DIR/corpus/$h/"
done

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0"
total=0
found=0
printf '%-20s %12s %10s %8s\n' harness execs exec/s findings
for h in "${HARNESSES[@]}"; do
  mkdir -p "$DIR/findings/$h" "$DIR/logs"
  max_len=4096
  [ "$h" = pth ] && max_len=16384
  log="$DIR/logs/$h.log"
  set +e
  nice -n "$NICE" "$DIR/fuzz_$h" "$DIR/corpus/$h" -max_total_time="$SECONDS_EACH" -max_len=$max_len \
    -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 -artifact_prefix="$DIR/findings/$h/" >"$log" 2>&1
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  n=$(find "$DIR/findings/$h" -type f | wc -l)
  printf '%-20s %12s %10s %8s\n' "$h" "${execs:-?}" "${rate:-?}" "$n"
  total=$((total + ${execs:-0}))
  found=$((found + n))
done
echo "total executions: $total; findings: $found (build-fuzz/findings/, logs in $DIR/logs/)"
[ "$found" -eq 0 ]

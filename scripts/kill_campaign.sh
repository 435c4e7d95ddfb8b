#!/usr/bin/env bash
# Kill -9 campaign (issue 20) for every long command: train, distill, finetune, surgery at tiny size on the CPU.
# For each command: one uninterrupted run, then KILLS runs each SIGKILLed at a random time (seeded) or inside a
# write (SURGEON_KILL_AT=write:N: in the N-th atomic file write after its temporary file is written; swap:N: in the
# N-th folder swap, between moving the old folder away and the new one in), each followed by the command again
# (--resume where the command has it). After every kill no file under its final name may be half-written
# (safetensors header and offsets inside the file, JSON parses); every resumed run must equal the uninterrupted
# one bit for bit (weights, checkpoints, tables, loss.csv; reports without their times).
#   scripts/kill_campaign.sh [KILLS] [SEED] [COMMAND...]     default: 8 kills per command, seed 1, all commands
# Environment: SURGEON_BIN (default build/cli/surgeon), SURGEON_NICE (default 10). Exit 1 on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KILLS=${1:-8}
SEED=${2:-1}
shift 2 || shift $# || true
COMMANDS=("$@")
[ ${#COMMANDS[@]} -eq 0 ] && COMMANDS=(train distill finetune surgery)
BIN=$(readlink -f "${SURGEON_BIN:-build/cli/surgeon}")
NICE=${SURGEON_NICE:-10}
PY=${SURGEON_VENV:-$HOME/.cache/surgeon/venv}/bin/python
W=$(mktemp -d /tmp/surgeon-kill-XXXXXX)
RANDOM=$SEED
failures=0
S() { nice -n "$NICE" "$BIN" "$@"; }

# Fixtures: a tiny teacher, an options file, a student of it.
S train --config configs/tiny-train.json --out "$W/t" --steps 10 >/dev/null 2>&1
cat > "$W/options.json" <<'JSON'
{"options": [{"name": "softmax", "kind": "softmax"},
             {"name": "R2", "kind": "hybrid", "rate": 2, "feature_map": {"kind": "elu1"}},
             {"name": "lin", "kind": "linear", "feature_map": {"kind": "elu1"}}]}
JSON
S plan uniform --model "$W/t/model" --kind hybrid --rate 2 --out "$W/r2.json" >/dev/null 2>&1
S student --teacher "$W/t/model" --plan "$W/r2.json" --out "$W/s" >/dev/null 2>&1

args_of() {  # the command line of COMMAND writing OUT
  case $1 in
    train) echo "train --config $ROOT/configs/tiny-train.json --set batch=1 checkpoint_every=2 log_every=2 --steps 8 --out $2" ;;
    distill) echo "distill --teacher $W/t/model --options $W/options.json --prompts 2 --heldout-prompts 1 --batch 1 --updates 3 --sample-steps 3 --out $2" ;;
    finetune) echo "finetune --student $W/s --steps 6 --checkpoint-every 2 --log-every 2 --batch 1 --out $2" ;;
    surgery) echo "surgery --teacher $W/t/model --options $W/options.json --budget 0.6 --preset quick --distill-updates 3 --finetune-steps 4 --eval-samples 2 --out $2" ;;
  esac
}
resume_flag() { case $1 in train|distill|finetune) echo "--resume" ;; *) echo "" ;; esac; }

# Digest of a finished run: every file's bytes, except wall times: JSON keys naming seconds/elapsed, CSV columns
# named so, a checkpoint's `history` tensor's last column (elapsed seconds); libtorch archives (.pt) are compared
# by their tensor storages (their serialization_id is random and their state is keyed by memory addresses); PNG
# renderings and report.md (which print those times) are left out.
digest() {
  "$PY" - "$1" <<'PY'
import hashlib, json, os, re, struct, sys
timed = re.compile(r'seconds|elapsed|_s$')
def strip(j):
    if isinstance(j, dict):
        return {k: strip(v) for k, v in j.items() if not timed.search(k)}
    if isinstance(j, list):
        return [strip(v) for v in j]
    return j
root = sys.argv[1]
for dirpath, _, files in sorted(os.walk(root)):
    for f in sorted(files):
        p = os.path.join(dirpath, f)
        rel = os.path.relpath(p, root)
        if f.endswith(('.png', '.md')) or f == 'surgeon.lock' or f == 'train_config.json':
            continue
        data = open(p, 'rb').read()
        if f.endswith('.json'):
            data = json.dumps(strip(json.loads(data)), sort_keys=True).encode()
        elif f.endswith('.csv'):
            rows = [r.split(',') for r in data.decode().splitlines()]
            keep = [i for i, c in enumerate(rows[0]) if not timed.search(c)] if rows else []
            data = '\n'.join(','.join(r[i] for i in keep if i < len(r)) for r in rows).encode()
        elif f.endswith(('.pt', '.pth')):
            # libtorch archives (the optimizer state): a random serialization_id, and the state keyed (and ordered)
            # by the tensors' memory addresses; the set of storages (data/N) is the state.
            import zipfile
            with zipfile.ZipFile(p) as z:
                data = b''.join(sorted(hashlib.sha256(z.read(n)).digest() for n in z.namelist()
                                       if re.search(r'/data/[0-9]+$', n)))
        elif f.endswith('.safetensors'):
            n = struct.unpack('<Q', data[:8])[0]
            h = json.loads(data[8:8 + n])
            out = []
            for k in sorted(h):
                if k == '__metadata__':
                    out.append(json.dumps(h[k], sort_keys=True).encode()); continue
                b, e = h[k]['data_offsets']
                t = data[8 + n + b:8 + n + e]
                if k == 'history' and len(h[k]['shape']) == 2:
                    rows, cols = h[k]['shape']; w = len(t) // max(rows * cols, 1)
                    t = b''.join(t[(r * cols) * w:(r * cols + cols - 1) * w] for r in range(rows))
                out.append(k.encode() + json.dumps(h[k]['shape']).encode() + t)
            data = b''.join(out)
        print(rel, hashlib.sha256(data).hexdigest())
PY
}

# Every safetensors / JSON file under a final name is whole.
check_whole() {
  "$PY" - "$1" <<'PY'
import json, os, struct, sys
bad = []
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(root, f)
        if '.tmp' in p:
            continue
        try:
            if f.endswith('.safetensors'):
                size = os.path.getsize(p)
                with open(p, 'rb') as fh:
                    n = struct.unpack('<Q', fh.read(8))[0]
                    h = json.loads(fh.read(n))
                end = max([v['data_offsets'][1] for k, v in h.items() if k != '__metadata__'] + [0])
                assert 8 + n + end == size, 'data section %d + %d + %d != %d' % (8, n, end, size)
            elif f.endswith('.json'):
                json.load(open(p))
        except Exception as e:
            bad.append('%s: %s' % (p, e))
print('\n'.join(bad))
sys.exit(1 if bad else 0)
PY
}

for cmd in "${COMMANDS[@]}"; do
  ref="$W/$cmd-full"
  t0=$(date +%s.%N)
  S $(args_of "$cmd" "$ref") >/dev/null 2>"$W/err" || { echo "$cmd: uninterrupted run failed: $(cat "$W/err")"; exit 1; }
  secs=$(echo "$(date +%s.%N) - $t0" | bc)
  want=$(digest "$ref")
  ok=0
  for i in $(seq 1 "$KILLS"); do
    out="$W/$cmd-k$i"
    case $((RANDOM % 3)) in
      0) how="SURGEON_KILL_AT=write:$((1 + RANDOM % 30))"; env "$how" nice -n "$NICE" "$BIN" $(args_of "$cmd" "$out") >/dev/null 2>&1 || true ;;
      1) how="SURGEON_KILL_AT=swap:$((1 + RANDOM % 4))"; env "$how" nice -n "$NICE" "$BIN" $(args_of "$cmd" "$out") >/dev/null 2>&1 || true ;;
      2) at=$(echo "scale=2; $secs * (10 + $RANDOM % 86) / 100" | bc); how="SIGKILL after ${at}s"
         timeout -s KILL "$at" nice -n "$NICE" "$BIN" $(args_of "$cmd" "$out") >/dev/null 2>&1 || true ;;
    esac
    if ! bad=$(check_whole "$out" 2>&1); then
      echo "$cmd [$how]: half-written file under its final name: $bad"; failures=$((failures + 1)); continue
    fi
    if ! S $(args_of "$cmd" "$out") $( [ -d "$out" ] && resume_flag "$cmd") >/dev/null 2>"$W/err"; then
      echo "$cmd [$how]: rerun failed: $(cat "$W/err")"; failures=$((failures + 1)); continue
    fi
    if [ "$(digest "$out")" != "$want" ]; then
      echo "$cmd [$how]: resumed result differs from the uninterrupted run"; diff <(echo "$want") <(digest "$out") | head -5
      failures=$((failures + 1)); continue
    fi
    ok=$((ok + 1))
  done
  echo "$cmd: $ok of $KILLS killed runs resumed to the uninterrupted result (run ${secs%.*} s)"
done
echo "work folder: $W; failures: $failures"
[ "$failures" -eq 0 ] && rm -rf "$W"
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (gcc by default; CC/CXX pick another).
#   scripts/sanitize.sh [ctest args]      default: -L 'unit|cli'
# Own build folder ($SURGEON_SAN_DIR, default build-san): -O1 -g, no CUDA, no benchmarks. It is a full rebuild
# (about an hour on 2 shared cores under nice); later runs are incremental. Any sanitizer report aborts the
# process that hit it, so it fails its test. libtorch itself is not instrumented: its own allocations are
# checked for bounds only where Surgeon's code touches them.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SURGEON_VENV:-$HOME/.cache/surgeon/venv}
DIR=${SURGEON_SAN_DIR:-build-san}
JOBS=${SURGEON_JOBS:-$(nproc)}
NICE=${SURGEON_NICE:-10}
TORCH_PREFIX=$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
# vptr is off: libtorch's classes come from an uninstrumented library, and their type info would be reported falsely.
FLAGS="-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
if [ ! -f "$DIR/build.ninja" ]; then
  cmake -S . -B "$DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DSURGEON_WITH_CUDA=OFF -DSURGEON_BUILD_BENCHMARKS=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX"
fi
start=$(date +%s)
nice -n "$NICE" cmake --build "$DIR" -j "$JOBS"
echo "[sanitize] build: $(( $(date +%s) - start )) s"
SUPP=$(pwd)/scripts/sanitize.supp
export ASAN_OPTIONS="abort_on_error=1:allocator_may_return_null=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=0:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$SUPP:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
start=$(date +%s)
if [ $# -eq 0 ]; then set -- -L 'unit|cli'; fi
rc=0
nice -n "$NICE" ctest --test-dir "$DIR" --output-on-failure -j "$JOBS" --timeout 1800 "$@" || rc=$?
echo "[sanitize] tests: $(( $(date +%s) - start )) s, ctest exit $rc"
exit $rc

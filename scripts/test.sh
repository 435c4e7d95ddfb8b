#!/usr/bin/env bash
# The test command: installs/builds (scripts/setup.sh), then runs the whole test suite with CTest.
# Extra arguments go to ctest, e.g. `scripts/test.sh -L unit` for the fast subset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir "${SURGEON_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"

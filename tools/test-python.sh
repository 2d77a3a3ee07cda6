#!/usr/bin/env bash
# The Python package's tests: installs python/ into the cached environment that
# tools/python-env.sh keeps, the way a user's `pip install ./python` does (maturin, release
# build), with the lerobot plugin beside it, then runs the pytest suite against lerobot 0.6.1
# in that environment.
set -euo pipefail
cd "$(dirname "$0")/.."
env_dir="$(tools/python-env.sh)"
"$env_dir/bin/python" -m pip install --quiet --force-reinstall --no-deps ./python ./python/lerobot_policy_brainstem
# From the repository root, so that python/brainstem (the sources, without the built
# extension) does not shadow the installed package.
"$env_dir/bin/pytest" -q python/tests

#!/usr/bin/env bash
# Prints the path of a Python 3.12 virtual environment holding python/requirements-test.txt,
# creating or updating it first when it is missing or the requirements changed. It lives in
# the user's cache ($BRAINSTEM_PYTHON_ENV, else ~/.cache/brainstem/python-env), not in the
# clone: lerobot brings PyTorch (about 5 GB), which a fresh clone should not download again.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=python/requirements-test.txt
env_dir="${BRAINSTEM_PYTHON_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/brainstem/python-env}"
stamp="$env_dir/.brainstem-requirements"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"

find_python312() {
  local candidate
  for candidate in python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 \
    "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "tools/python-env.sh: no Python 3.12 found (lerobot 0.6.1 needs it); install one, for example with pyenv" >&2
  return 1
}

if [ ! -x "$env_dir/bin/python" ]; then
  python312="$(find_python312)"
  mkdir -p "$(dirname "$env_dir")"
  "$python312" -m venv "$env_dir" >&2
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "tools/python-env.sh: installing $requirements into $env_dir" >&2
  "$env_dir/bin/python" -m pip install --quiet --upgrade pip >&2
  "$env_dir/bin/python" -m pip install --quiet -r "$requirements" >&2
  echo "$wanted" >"$stamp"
fi
echo "$env_dir"

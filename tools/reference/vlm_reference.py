#!/usr/bin/env python3
"""Reference data for brainstem's vision-language model (SigLIP + Idefics3 connector + Llama),
made with Hugging Face `transformers` (Idefics3ForConditionalGeneration, Idefics3Processor
with the PIL image processor).

Writes, under tools/reference/out/tiny-idefics3/ (committed, small):
  config.json, model.safetensors   a tiny Idefics3 initialised with a fixed seed from
                   SmolVLM-256M's real config (SigLIP vision tower, pixel-shuffle connector
                   with scale factor 4 there, SmolLM2-style Llama text tower), shrunk in
                   width, depth and image size, keeping the structure: image splitting into
                   tiles plus a global image, GQA in the text tower, untied lm_head;
  tokenizer.json, tokenizer_config.json, preprocessor_config.json, processor_config.json
                   a byte-level BPE tokenizer with no merges and Idefics3's special tokens, and
                   the processor configuration;
  image.png        a 150x100 synthetic RGB image (gradients and shapes);
  golden.safetensors  the processor's pixel_values [tiles, 3, H, W], input_ids, and the
                   model's logits for every position of the prompt;
  golden.json      the prompt, the expanded prompt text, and the tile grid.
and under tools/reference/out/smolvlm-256m-shaped/: SmolVLM-256M's full shape with weights
from a counter-based generator (splitmix64 of an FNV-1a hash of the tensor name plus the
index) that tests reproduce in Rust, so only config.json, processor_config.json and
golden.json (prompt ids, tensor names and shapes, a few of the last position's logits)
are committed.

Run: python3 tools/reference/vlm_reference.py
Needs: torch, transformers>=5, pillow, safetensors, numpy.
"""

import json
import pathlib

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.numpy import save_file as save_numpy
from tokenizers import Tokenizer, models, pre_tokenizers, decoders
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    PreTrainedTokenizerFast,
)

OUT = pathlib.Path(__file__).resolve().parent / "out" / "tiny-idefics3"

# SmolVLM-256M-Instruct's configuration (as published on the Hugging Face hub), then the shrink.
SMOLVLM_256M_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, image_size=512, patch_size=16,
                           hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
SMOLVLM_256M_TEXT = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0,
                         rms_norm_eps=1e-5, hidden_act="silu", max_position_embeddings=8192,
                         vocab_size=49280, tie_word_embeddings=False)
SMOLVLM_256M_SCALE_FACTOR = 4
SMOLVLM_256M_PROCESSOR = dict(max_image_size=512, size=2048, image_seq_len=64)

TINY_VISION = dict(SMOLVLM_256M_VISION, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=2, image_size=64, patch_size=16)
TINY_TEXT = dict(SMOLVLM_256M_TEXT, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
TINY_SCALE_FACTOR = 2
TINY_MAX_IMAGE = 64
TINY_SIZE = 128
SPECIAL = ["<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>",
           "<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
PROMPT = "<|im_start|>User:<image>What is in the picture?<end_of_utterance>\nAssistant:"


def byte_level_tokenizer(special, **options):
    """Byte-level BPE over the 256 byte symbols, no merges, with `special` tokens; `options`
    go to `PreTrainedTokenizerFast` (named special tokens, a pad token)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens(special)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, clean_up_tokenization_spaces=False, **options)


def tiny_tokenizer():
    """The byte-level tokenizer with Idefics3's special tokens."""
    return byte_level_tokenizer(SPECIAL)


def test_image():
    image = Image.new("RGB", (150, 100))
    pixels = image.load()
    for y in range(100):
        for x in range(150):
            pixels[x, y] = (int(255 * x / 149), int(255 * y / 99), (x * y) % 256)
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 15, 70, 65), fill=(250, 40, 30))
    draw.rectangle((90, 40, 140, 90), fill=(20, 200, 60))
    draw.line((0, 99, 149, 0), fill=(255, 255, 255), width=3)
    return image


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=True,
        size={"longest_edge": TINY_SIZE},
        max_image_size={"longest_edge": TINY_MAX_IMAGE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_seq_len = (TINY_VISION["image_size"] // TINY_VISION["patch_size"]) ** 2 // TINY_SCALE_FACTOR**2
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=image_seq_len)

    text_vocab = len(tokenizer)
    config = Idefics3Config(
        vision_config=TINY_VISION,
        text_config=dict(TINY_TEXT, vocab_size=text_vocab),
        scale_factor=TINY_SCALE_FACTOR,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(20261122)
    model = Idefics3ForConditionalGeneration(config).eval()
    with torch.no_grad():  # wider than the default init, so that every path carries signal
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.08)
    model.save_pretrained(OUT, safe_serialization=True)
    processor.save_pretrained(OUT)

    image = test_image()
    image.save(OUT / "image.png")
    inputs = processor(text=[PROMPT], images=[[Image.open(OUT / "image.png").convert("RGB")]],
                       return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    pixel_values = inputs["pixel_values"][0].numpy().astype(np.float32)
    save_numpy({
        "pixel_values": pixel_values,
        "input_ids": inputs["input_ids"][0].numpy().astype(np.int64),
        "logits": logits.numpy().astype(np.float32),
    }, str(OUT / "golden.safetensors"))
    expanded = tokenizer.decode(inputs["input_ids"][0])
    golden = {"prompt": PROMPT, "expanded": expanded, "image_seq_len": image_seq_len,
              "tiles": int(pixel_values.shape[0]), "tile_size": int(pixel_values.shape[-1])}
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1))
    print(f"tiles {pixel_values.shape}, {inputs['input_ids'].shape[1]} tokens, logits {tuple(logits.shape)}")


# --- The SmolVLM-256M-shaped model: full size, weights from a counter-based generator that the
# Rust test reproduces exactly, so only the configuration and a few logits are committed.

SHAPED = pathlib.Path(__file__).resolve().parent / "out" / "smolvlm-256m-shaped"
MASK64 = (1 << 64) - 1


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK64
    return h


def splitmix_uniform(name, count):
    """count values in [-1, 1): splitmix64 of (fnv1a64(name) + i), top 24 bits."""
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(name)) + np.arange(count, dtype=np.uint64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 23) - 1.0


def generated_value(name, shape):
    """Norm gains near 1, biases and everything else small and centred."""
    u = splitmix_uniform(name, int(np.prod(shape))).reshape(shape)
    if "norm" in name and name.endswith("weight"):
        return (1.0 + 0.1 * u).astype(np.float32)
    if name.endswith("bias"):
        return (0.02 * u).astype(np.float32)
    return (0.05 * u).astype(np.float32)


def smolvlm_256m_shaped():
    """SmolVLM-256M's full shape with generated weights: the processor and the last
    position's logits (the top 16 and every 997th) for the tiny model's test image."""
    SHAPED.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=True, size={"longest_edge": SMOLVLM_256M_PROCESSOR["max_image_size"]},
        max_image_size={"longest_edge": SMOLVLM_256M_PROCESSOR["max_image_size"]},
        image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=SMOLVLM_256M_PROCESSOR["image_seq_len"])
    config = Idefics3Config(vision_config=SMOLVLM_256M_VISION, text_config=SMOLVLM_256M_TEXT,
                            scale_factor=SMOLVLM_256M_SCALE_FACTOR, tie_word_embeddings=False,
                            image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    model = Idefics3ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, param in model.state_dict().items():
            param.copy_(torch.from_numpy(generated_value(name, tuple(param.shape))))
    config.save_pretrained(SHAPED)
    processor.save_pretrained(SHAPED)
    inputs = processor(text=[PROMPT], images=[[Image.open(OUT / "image.png").convert("RGB")]], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1].numpy()
    top = np.argsort(-logits)[:16]
    sampled = np.arange(0, logits.shape[0], 997)
    indices = [int(i) for i in np.concatenate([top, sampled])]
    tensors = [[name, list(param.shape)] for name, param in model.state_dict().items()]
    golden = {"input_ids": inputs["input_ids"][0].tolist(), "indices": indices,
              "logits": [float(logits[i]) for i in indices], "argmax": int(top[0]), "tensors": tensors}
    (SHAPED / "golden.json").write_text(json.dumps(golden))
    print(f"SmolVLM-256M-shaped: {len(golden['input_ids'])} prompt tokens, argmax {golden['argmax']}")


if __name__ == "__main__":
    main()
    smolvlm_256m_shaped()

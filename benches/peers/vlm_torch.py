#!/usr/bin/env python3
"""The PyTorch + transformers side of the vision-language benchmark, and the maker of its
model: a SmolVLM-256M-shaped Idefics3 (the published config's widths, depths, vocabulary and
pixel-shuffle factor) with seeded random weights, so no download is needed.

  python3 benches/peers/vlm_torch.py make DIR    writes config.json, model.safetensors (f32,
                                                 about 1 GB), tokenizer.json, processor config
                                                 and a 512x512 test image into DIR
  python3 benches/peers/vlm_torch.py time DIR    prints JSON: median time from the image file
                                                 to the first token over --reps runs, f32

The image is one 512x512 tile (the processor's longest edge is set to 512, so the frame is not
upscaled and split), 64 image features, and a prompt of 32 text tokens.
"""

import json
import pathlib
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image
from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil,
                          Idefics3Processor)

# The published SmolVLM-256M shape and the byte-level tokenizer live with the reference data.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "reference"))
from vlm_reference import SMOLVLM_256M_TEXT, SMOLVLM_256M_VISION, tiny_tokenizer  # noqa: E402

# 32 text tokens with the byte-level tokenizer (one token per byte).
QUESTION = "Which object is left of the cup?"
PROMPT = f"<|im_start|>User:<image>{QUESTION}<end_of_utterance>\nAssistant:"


def processor(tok):
    images = Idefics3ImageProcessorPil(do_image_splitting=True, size={"longest_edge": 512},
                                       max_image_size={"longest_edge": 512},
                                       image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return Idefics3Processor(images, tok, image_seq_len=64)


def make(out):
    out.mkdir(parents=True, exist_ok=True)
    tok = tiny_tokenizer()
    config = Idefics3Config(vision_config=SMOLVLM_256M_VISION, text_config=SMOLVLM_256M_TEXT, scale_factor=4,
                            image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    processor(tok).save_pretrained(out)
    rng = np.random.default_rng(0)
    pixels = (rng.random((512, 512, 3)) * 255).astype(np.uint8)
    pixels[100:300, 150:350] = [200, 30, 30]
    Image.fromarray(pixels).save(out / "frame.png")
    print(f"wrote {out}")


def time_first_token(out, reps):
    torch.set_num_threads(2)
    proc = Idefics3Processor.from_pretrained(out)
    model = Idefics3ForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        image = Image.open(out / "frame.png").convert("RGB")
        inputs = proc(text=[PROMPT], images=[[image]], return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1]
        int(logits.argmax())
        times.append(time.perf_counter() - start)
    text_tokens = int((inputs["input_ids"][0] != model.config.image_token_id).sum())
    print(json.dumps({"engine": f"PyTorch {torch.__version__} f32", "median_s": statistics.median(times),
                      "min_s": min(times), "max_s": max(times), "prompt_tokens": int(inputs["input_ids"].shape[1]),
                      "text_tokens": text_tokens}))


if __name__ == "__main__":
    command, directory = sys.argv[1], pathlib.Path(sys.argv[2])
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    {"make": lambda: make(directory), "time": lambda: time_first_token(directory, reps)}[command]()

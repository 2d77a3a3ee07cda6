#!/usr/bin/env python3
"""Reference data for brainstem's pi0 and pi0.5, made with lerobot 0.6.1's own PI0Policy and
PI05Policy.

Writes, under tools/reference/out/pi0/ and out/pi05/ (committed, small):
  hf-home/           a Hugging Face cache (`$HF_HOME` layout) holding a tiny Gemma-style
                     tokenizer as `google/paligemma-3b-pt-224`, the tokenizer lerobot's pi0
                     processor names; lerobot reads it offline;
  <variant>/         one tiny pi0 per variant, random-init with a fixed seed, saved by
                     `policy.save_pretrained` and the processors' `save_pretrained`;
  <variant>/golden/  the fixed inputs (camera PNGs, noise.safetensors) and what lerobot
                     computed from them (golden.safetensors: each denoising step's input and
                     velocity, the chunk before and after the postprocessor, the images as the
                     vision tower saw them; golden.json: the task, state and token ids).

pi0.5 differs from pi0 where lerobot's pi05 does: no state row (the state, normalized by
quantiles and cut into 256 bins, is written into the prompt), the time step conditioning the
expert's norms (adaRMS) rather than joining the actions, and right-padded prompts of 200 tokens.

lerobot builds pi0 only at its published sizes (PaliGemma 3B with SigLIP so400m, the 300M
Gemma expert). This script keeps every piece of lerobot's model and shrinks the sizes: the
Gemma variants (`get_gemma_config`), the SigLIP tower, the vocabulary. The checkpoint's
config.json still names `gemma_2b` and `gemma_300m` (lerobot's config accepts no other), so a
loader must take the shapes from the tensors. The tiny tower keeps SigLIP so400m's head width,
72 (1152 / 16), from which a loader takes its head count.

Run: /path/to/python3.12 tools/reference/pi0_reference.py
Needs: Python 3.12, lerobot 0.6.1 (tools/reference/requirements-actions.txt). Works offline.
"""

import os
import pathlib
import shutil

OUT_ROOT = pathlib.Path(__file__).resolve().parent / "out"
OUT = OUT_ROOT / "pi0"
HF_HOME = OUT / "hf-home"
TOKENIZER_ID = "google/paligemma-3b-pt-224"
TOKENIZER_REVISION = "9e1ab1ee9e1ab1ee9e1ab1ee9e1ab1ee9e1ab1ee"

if __name__ == "__main__":  # lerobot's processor reads the tokenizer from this cache, offline
    os.environ["HF_HOME"] = str(HF_HOME)
    os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import processors
from transformers import GemmaConfig, PaliGemmaConfig, PreTrainedTokenizerFast

import lerobot.policies.pi0.modeling_pi0 as modeling_pi0
import lerobot.policies.pi05.modeling_pi05 as modeling_pi05
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi0.modeling_pi0 import GemmaConfig as PiGemmaShape
from lerobot.policies.pi0.modeling_pi0 import PI0Policy
from lerobot.policies.pi0.processor_pi0 import make_pi0_pre_post_processors
from lerobot.policies.pi05.configuration_pi05 import PI05Config
from lerobot.policies.pi05.modeling_pi05 import PI05Policy
from lerobot.policies.pi05.processor_pi05 import make_pi05_pre_post_processors
from smolvla_reference import camera_image, dataset_stats, randomize, snapshot_dir, trace, write_golden
from vlm_reference import byte_level_tokenizer

# The Gemma variants at a test size: the backbone and the expert share head width and
# key/value heads (their keys and values meet in one attention), eight heads as lerobot's
# joint forward assumes.
TINY_GEMMA = {
    "gemma_2b": PiGemmaShape(width=64, depth=3, mlp_dim=128, num_heads=8, num_kv_heads=1, head_dim=8),
    "gemma_300m": PiGemmaShape(width=48, depth=3, mlp_dim=96, num_heads=8, num_kv_heads=1, head_dim=8),
}
# SigLIP at a test size, with so400m's head width of 72.
TINY_VISION = dict(hidden_size=144, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                   patch_size=14)
IMAGE_SIZE = 56
SPECIAL = ["<pad>", "<eos>", "<bos>"]

STATE_DIM, ACTION_DIM = 6, 6
TASK = "pick up the cube"
STATE = [0.3, -0.7, 1.1, 0.05, 0.4, -1.5]

VARIANTS = {
    # Two cameras of other sizes than the model's (resized with padding).
    "two-cameras": dict(
        cameras={"top": (3, 48, 64), "wrist": (3, 40, 40)},
        given=["top", "wrist"],
        config=dict(chunk_size=6, n_action_steps=6, num_inference_steps=3, max_state_dim=8, max_action_dim=8,
                    tokenizer_max_length=24),
    ),
    # A wrist camera the observation lacks (an empty, masked camera), one at the model's size.
    "missing-camera": dict(
        cameras={"top": (3, 56, 56), "wrist": (3, 64, 64)},
        given=["top"],
        config=dict(chunk_size=5, n_action_steps=5, num_inference_steps=4, max_state_dim=8, max_action_dim=8,
                    tokenizer_max_length=20),
    ),
}


def tiny_tokenizer():
    """A byte-level tokenizer with Gemma's pad, end and beginning tokens, which it puts first as
    PaliGemma's does."""
    tokenizer = byte_level_tokenizer(SPECIAL, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    bos = tokenizer.convert_tokens_to_ids("<bos>")
    backend = tokenizer.backend_tokenizer
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", clean_up_tokenization_spaces=False)


def write_tokenizer():
    """The tokenizer lerobot's pi0 processor loads, in a Hugging Face cache."""
    if HF_HOME.exists():
        shutil.rmtree(HF_HOME)
    folder = snapshot_dir(HF_HOME, TOKENIZER_ID, TOKENIZER_REVISION)
    folder.mkdir(parents=True)
    refs = folder.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text(folder.name)
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(folder)
    # AutoTokenizer reads the model type from the repository's config, as the real one has.
    PaliGemmaConfig(text_config=dict(vocab_size=len(tokenizer))).save_pretrained(folder)
    return len(tokenizer)


def shrink_lerobot(modeling, vocab):
    """lerobot's pi0 or pi05 modules at test sizes: the Gemma variants, PaliGemma's SigLIP and
    vocabulary, the expert's vocabulary (its unused head would be the checkpoint's largest
    tensor)."""
    modeling.get_gemma_config = lambda variant: TINY_GEMMA[variant]

    def paligemma_config(**options):
        config = PaliGemmaConfig(**options)
        config.vision_config.update(TINY_VISION)
        return config

    def gemma_config(**options):
        return GemmaConfig(**dict(options, vocab_size=vocab))

    modeling.CONFIG_MAPPING = {"paligemma": paligemma_config, "gemma": gemma_config}
    build = modeling.PaliGemmaForConditionalGenerationWithPiGemma

    def tiny_paligemma(config):
        # lerobot sets the published sizes after making the config; the test sizes win.
        config.vision_config.update(TINY_VISION)
        config.vision_config.projection_dim = config.text_config.hidden_size
        config.projection_dim = config.text_config.hidden_size
        config.text_config.vocab_size = vocab
        config._vocab_size = vocab  # noqa: SLF001
        config.image_token_index = vocab
        config.text_config.num_image_tokens = (IMAGE_SIZE // TINY_VISION["patch_size"]) ** 2
        return build(config=config)

    modeling.PaliGemmaForConditionalGenerationWithPiGemma = tiny_paligemma


# What differs between the two policies, by lerobot type.
KINDS = {
    "pi0": dict(config=PI0Config, policy=PI0Policy, processors=make_pi0_pre_post_processors),
    "pi05": dict(config=PI05Config, policy=PI05Policy, processors=make_pi05_pre_post_processors),
}


def quantile_stats(seed):
    """Statistics with every field lerobot's normalizers read, quantiles included."""
    rng = np.random.default_rng(seed)
    stats = {}
    for key, dim in (("observation.state", STATE_DIM), ("action", ACTION_DIM)):
        low = rng.uniform(-2.0, -0.5, dim)
        high = low + rng.uniform(1.0, 3.0, dim)
        q = lambda f: torch.tensor(low + f * (high - low), dtype=torch.float32)  # noqa: E731
        stats[key] = {"mean": q(0.5), "std": torch.tensor(rng.uniform(0.2, 1.5, dim), dtype=torch.float32),
                      "min": q(0.0), "max": q(1.0), "q01": q(0.02), "q99": q(0.97), "q10": q(0.1), "q90": q(0.9)}
    return stats


def policy_config(variant, kind="pi0"):
    spec = VARIANTS[variant]
    inputs = {f"observation.images.{cam}": PolicyFeature(type=FeatureType.VISUAL, shape=shape)
              for cam, shape in spec["cameras"].items()}
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    options = dict(spec["config"])
    if kind == "pi05":
        options["tokenizer_max_length"] = 96  # the whole prompt with the state's bins, byte by byte
    return KINDS[kind]["config"](input_features=inputs, output_features=outputs, device="cpu", dtype="float32",
                                 image_resolution=(IMAGE_SIZE, IMAGE_SIZE), push_to_hub=False, **options)


def make_variant(variant, seed, kind="pi0"):
    out = OUT_ROOT / kind / variant
    if out.exists():
        shutil.rmtree(out)
    (out / "golden").mkdir(parents=True)
    config = policy_config(variant, kind)
    torch.manual_seed(seed)
    policy = KINDS[kind]["policy"](config).eval()
    randomize(policy, seed + 1)
    policy.save_pretrained(out)
    stats = dataset_stats(seed + 2) if kind == "pi0" else quantile_stats(seed + 2)
    pre, post = KINDS[kind]["processors"](config, dataset_stats=stats)
    pre.save_pretrained(out)
    post.save_pretrained(out)

    spec = VARIANTS[variant]
    observation = {"observation.state": torch.tensor(STATE, dtype=torch.float32), "task": TASK}
    for i, cam in enumerate(spec["given"]):
        image = camera_image(cam, spec["cameras"][cam], seed + 10 + i)
        image.save(out / "golden" / f"{cam}.png")
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        observation[f"observation.images.{cam}"] = pixels.contiguous()
    generator = torch.Generator().manual_seed(seed + 3)
    noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=generator)
    save_file({"noise": noise.contiguous()}, str(out / "golden" / "noise.safetensors"))

    steps, images = trace(policy, policy.model.paligemma_with_expert)
    batch = pre(observation)
    with torch.no_grad():
        chunk = policy.predict_action_chunk(batch, noise=noise.clone())
    actions = post(chunk)

    golden = write_golden(out / "golden", batch, chunk, actions, steps, images, dict(cameras=spec["given"]), {})
    print(f"{kind} {variant}: chunk {tuple(actions.shape)}, {len(steps)} steps, "
          f"{sum(golden['token_mask'])} of {len(golden['token_ids'])} tokens, {len(images)} images")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer()
    shrink_lerobot(modeling_pi0, vocab)
    shrink_lerobot(modeling_pi05, vocab)
    for i, variant in enumerate(VARIANTS):
        make_variant(variant, 20261208 + 100 * i)
        make_variant(variant, 20261209 + 100 * i, kind="pi05")


if __name__ == "__main__":
    main()

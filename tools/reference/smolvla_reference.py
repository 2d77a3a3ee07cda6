#!/usr/bin/env python3
"""Reference data for brainstem's SmolVLA, made with lerobot 0.6.1's own SmolVLAPolicy.

Writes, under tools/reference/out/smolvla/ (committed, small):
  hf-home/           a Hugging Face cache (`$HF_HOME` layout) holding one tiny SmolVLM2
                     backbone, `brainstem-test/tiny-smolvlm2` (config.json, tokenizer and
                     processor files; no weights: SmolVLA's checkpoint carries them), which
                     the policies name as `vlm_model_name` and lerobot reads offline;
  <variant>/         one tiny SmolVLA per variant, random-init with a fixed seed, saved by
                     `policy.save_pretrained` and the processors' `save_pretrained`
                     (config.json, model.safetensors, policy_preprocessor.json,
                     policy_postprocessor.json and their normalizer .safetensors);
  <variant>/golden/  the fixed inputs (camera PNGs, noise.safetensors) and what lerobot
                     computed from them (golden.safetensors: each denoising step's velocity
                     and sample, the final chunk before and after the postprocessor, the
                     prefix's image embeddings; golden.json: the task, state and token ids).

The variants differ where the model's structure does: VLM layers against the backbone's
text depth, how often the expert self-attends, expert depth, chunk length, denoising steps,
cameras (one missing, filled by `empty_cameras`), image special tokens and image sizes.

Run: /path/to/python3.12 tools/reference/smolvla_reference.py
Needs: Python 3.12, pip install -r tools/reference/requirements-actions.txt (lerobot 0.6.1).
Works offline: the backbone is made here, nothing is downloaded from a hub.
"""

import json
import os
import pathlib
import shutil

OUT = pathlib.Path(__file__).resolve().parent / "out" / "smolvla"
HF_HOME = OUT / "hf-home"
BACKBONE_ID = "brainstem-test/tiny-smolvlm2"
BACKBONE_REVISION = "5d1ce5b0a5c0ffee5d1ce5b0a5c0ffee5d1ce5b0"


def snapshot_dir(hf_home, model_id, revision=BACKBONE_REVISION):
    """Where the Hugging Face cache keeps `model_id` at `revision`."""
    return hf_home / "hub" / f"models--{model_id.replace('/', '--')}" / "snapshots" / revision


BACKBONE = snapshot_dir(HF_HOME, BACKBONE_ID)
if __name__ == "__main__":  # lerobot reads the backbone from this cache, offline
    os.environ["HF_HOME"] = str(HF_HOME)
    os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from transformers import SmolVLMConfig

from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors
from vlm_reference import byte_level_tokenizer


# SmolVLM2-500M-Video-Instruct's text and vision towers (as published), then the shrink.
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   image_size=64, patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, rope_theta=100000.0, rms_norm_eps=1e-5,
                 hidden_act="silu", max_position_embeddings=1024, tie_word_embeddings=False)
SCALE_FACTOR = 2
SPECIAL = ["<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>",
           "<global-img>"]
NAMED_SPECIAL = {"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
                 "end_of_utterance_token": "<end_of_utterance>", "global_image_token": "<global-img>"}

STATE_DIM, ACTION_DIM = 6, 6
TASK = "pick up the cube"
STATE = [0.3, -0.7, 1.1, 0.05, 0.4, -1.5]

VARIANTS = {
    # Two cameras of different sizes, the VLM cut to 2 of the backbone's 4 text layers, the
    # expert self-attending every second layer.
    "two-cameras": dict(
        cameras={"top": (3, 48, 64), "wrist": (3, 40, 40)},
        given=["top", "wrist"],
        config=dict(num_vlm_layers=2, self_attn_every_n_layers=2, chunk_size=6, n_action_steps=6,
                    num_steps=3, max_state_dim=8, max_action_dim=8, expert_width_multiplier=0.75),
    ),
    # All four text layers, an expert of two layers (every second VLM layer), self-attention
    # every fourth layer, image special tokens, and a wrist camera the observation lacks,
    # filled as an empty camera.
    "missing-camera": dict(
        cameras={"top": (3, 72, 56), "wrist": (3, 64, 64)},
        given=["top"],
        config=dict(num_vlm_layers=4, num_expert_layers=2, self_attn_every_n_layers=4, chunk_size=5,
                    n_action_steps=5, num_steps=4, max_state_dim=8, max_action_dim=8,
                    expert_width_multiplier=0.5, add_image_special_tokens=True, empty_cameras=1),
    ),
}


def tiny_tokenizer():
    """The byte-level tokenizer of the VLM reference, with SmolVLM's named special tokens."""
    return byte_level_tokenizer(SPECIAL, extra_special_tokens=NAMED_SPECIAL, pad_token="<|im_end|>")


def write_backbone(hf_home=HF_HOME, backbone=BACKBONE, vision=TINY_VISION, text=TINY_TEXT,
                   scale_factor=SCALE_FACTOR):
    """The backbone folder `vlm_model_name` names, in a Hugging Face cache: config, tokenizer,
    processor; no weights. The text vocabulary is the tokenizer's unless `text` sets one."""
    if hf_home.exists():
        shutil.rmtree(hf_home)
    backbone.mkdir(parents=True)
    refs = backbone.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text(backbone.name)
    tokenizer = tiny_tokenizer()
    config = SmolVLMConfig(
        vision_config=vision,
        text_config=dict({"vocab_size": len(tokenizer)}, **text),
        scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
    )
    config.save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    image_processor = SmolVLMImageProcessor(
        size={"longest_edge": 2 * vision["image_size"]}, max_image_size={"longest_edge": vision["image_size"]},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    video_processor = SmolVLMVideoProcessor(
        size={"longest_edge": 2 * vision["image_size"]}, max_image_size={"longest_edge": vision["image_size"]})
    seq = (vision["image_size"] // vision["patch_size"]) ** 2 // scale_factor**2
    processor = SmolVLMProcessor(image_processor, tokenizer, video_processor, image_seq_len=seq,
                                 chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}")
    processor.save_pretrained(backbone)


def camera_image(name, shape, seed):
    """A deterministic test picture of `shape` (channels, height, width) for a camera."""
    _, height, width = shape
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            pixels[x, y] = (int(255 * x / max(width - 1, 1)), int(255 * y / max(height - 1, 1)),
                            (x * y + 40 * len(name)) % 256)
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + 8 + int(rng.integers(0, 12)), y0 + 8 + int(rng.integers(0, 12))),
                     fill=color)
    return image


def policy_config(variant):
    spec = VARIANTS[variant]
    inputs = {f"observation.images.{cam}": PolicyFeature(type=FeatureType.VISUAL, shape=shape)
              for cam, shape in spec["cameras"].items()}
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    size = TINY_VISION["image_size"]
    return SmolVLAConfig(
        input_features=inputs, output_features=outputs, device="cpu",
        vlm_model_name=BACKBONE_ID, load_vlm_weights=False, resize_imgs_with_padding=(size, size),
        tokenizer_max_length=24, push_to_hub=False, **spec["config"])


def dataset_stats(seed):
    rng = np.random.default_rng(seed)
    stats = {}
    for key, dim in (("observation.state", STATE_DIM), ("action", ACTION_DIM)):
        stats[key] = {"mean": torch.tensor(rng.normal(0.0, 0.5, dim), dtype=torch.float32),
                      "std": torch.tensor(rng.uniform(0.2, 1.5, dim), dtype=torch.float32)}
    return stats


def randomize(policy, seed):
    """Wider weights than the default init, and non-unit norms, so every path carries signal."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            elif name.endswith("bias"):
                param.normal_(0.0, 0.05)
            else:
                param.normal_(0.0, 0.1)


def write_golden(folder, batch, chunk, actions, steps, images, text, extra):
    """golden.safetensors (the normalized state, the chunk before and after the postprocessor,
    each image the tower saw, each step's input and velocity, and `extra`'s "tensors") and
    golden.json (the task, state, token ids and mask, times, actions, `text` and the rest of
    `extra`) in `folder`; returns what golden.json holds."""
    tensors = {
        **extra.pop("tensors", {}),
        "state_normalized": batch["observation.state"][0].float().contiguous().clone(),
        "chunk_normalized": chunk[0].float().contiguous(),
        "actions": actions[0].float().contiguous(),
    }
    for i, image in enumerate(images):
        tensors[f"pixels_{i}"] = image[0].float().contiguous()
    for i, (_, x_t, velocity) in enumerate(steps):
        tensors[f"step_{i}_x"] = x_t[0].float().contiguous()
        tensors[f"step_{i}_velocity"] = velocity[0].float().contiguous()
    save_file(tensors, str(folder / "golden.safetensors"))
    golden = {
        "task": TASK,
        "state": STATE,
        **text,
        "token_ids": batch["observation.language.tokens"][0].tolist(),
        "token_mask": batch["observation.language.attention_mask"][0].int().tolist(),
        "times": [float(time[0]) for time, _, _ in steps],
        "actions": actions[0].tolist(),
        **extra,
    }
    (folder / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    return golden


def trace(policy, embed_owner):
    """Records every denoising step's time, input and velocity, and every image the vision
    tower sees (`embed_owner.embed_image`), into the two lists it returns."""
    steps, images = [], []
    denoise = policy.model.denoise_step

    def traced_denoise(**kwargs):
        velocity = denoise(**kwargs)
        steps.append((kwargs["timestep"].clone(), kwargs["x_t"].clone(), velocity.clone()))
        return velocity

    embed_image = embed_owner.embed_image

    def traced_embed_image(image):
        images.append(image.clone())
        return embed_image(image)

    policy.model.denoise_step = traced_denoise
    embed_owner.embed_image = traced_embed_image
    return steps, images


def make_variant(variant, seed):
    out = OUT / variant
    if out.exists():
        shutil.rmtree(out)
    (out / "golden").mkdir(parents=True)
    config = policy_config(variant)
    torch.manual_seed(seed)
    policy = SmolVLAPolicy(config).eval()
    randomize(policy, seed + 1)
    policy.save_pretrained(out)
    pre, post = make_smolvla_pre_post_processors(config, dataset_stats=dataset_stats(seed + 2))
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

    steps, images = trace(policy, policy.model.vlm_with_expert)
    batch = pre(observation)
    with torch.no_grad():
        chunk = policy.predict_action_chunk(batch, noise=noise.clone())
    actions = post(chunk)

    traced_steps, traced_images = list(steps), list(images)  # the guided chunk below traces more
    rtc = real_time_chunking(policy, pre, post, observation, chunk, seed) if variant == "two-cameras" else {}
    golden = write_golden(out / "golden", batch, chunk, actions, traced_steps, traced_images,
                          dict(cameras=spec["given"]), rtc)
    print(f"{variant}: chunk {tuple(actions.shape)}, {len(traced_steps)} steps, "
          f"{len(golden['token_ids'])} tokens, {len(traced_images)} images")


RTC = dict(inference_delay=2, execution_horizon=4, max_guidance_weight=5.0, prefix_attention_schedule="LINEAR")


def real_time_chunking(policy, pre, post, observation, chunk, seed):
    """A second chunk from fresh noise, guided by lerobot's RTC toward the first chunk's
    steps from 2 on (what is left of it after the robot executed two steps)."""
    from lerobot.configs import RTCAttentionSchedule
    from lerobot.policies.rtc.configuration_rtc import RTCConfig

    policy.config.rtc_config = RTCConfig(
        enabled=True, execution_horizon=RTC["execution_horizon"], max_guidance_weight=RTC["max_guidance_weight"],
        prefix_attention_schedule=RTCAttentionSchedule.LINEAR)
    policy.init_rtc_processor()
    left_over = chunk[:, 2:, :].clone()
    noise = torch.randn(chunk.shape[0], policy.config.chunk_size, policy.config.max_action_dim,
                        generator=torch.Generator().manual_seed(seed + 4))
    with torch.no_grad():
        guided = policy.predict_action_chunk(pre(observation), noise=noise.clone(),
                                             inference_delay=RTC["inference_delay"],
                                             prev_chunk_left_over=left_over,
                                             execution_horizon=RTC["execution_horizon"])
    policy.config.rtc_config = None
    policy.init_rtc_processor()
    tensors = {"rtc_noise": noise[0].contiguous(), "rtc_left_over": left_over[0].float().contiguous(),
               "rtc_chunk_normalized": guided[0].float().contiguous(),
               "rtc_actions": post(guided)[0].float().contiguous()}
    return {"rtc": RTC, "tensors": tensors}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_backbone()
    for i, variant in enumerate(VARIANTS):
        make_variant(variant, 20261207 + 100 * i)


if __name__ == "__main__":
    main()

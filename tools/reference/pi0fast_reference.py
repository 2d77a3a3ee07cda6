#!/usr/bin/env python3
"""Reference data for brainstem's pi0-FAST, made with lerobot 0.6.1's own PI0FastPolicy.

Writes, under tools/reference/out/pi0fast/ (committed, small):
  hf-home/           a Hugging Face cache (`$HF_HOME` layout) holding the two tokenizers
                     lerobot's pi0-FAST loads by name: a tiny Gemma-style text tokenizer as
                     `google/paligemma-3b-pt-224` and the FAST action tokenizer fitted by
                     action_reference.py as `lerobot/fast-action-tokenizer`;
  <variant>/         one tiny pi0-FAST per variant, random-init with a fixed seed, saved by
                     `policy.save_pretrained` and the processors' `save_pretrained`;
  <variant>/golden/  the fixed inputs (camera PNGs) and what lerobot computed from them
                     (golden.json: the prompt's token ids, the greedy tokens lerobot sampled,
                     the action tokens they decode to, the chunk before and after the
                     postprocessor; golden.safetensors: the images as the vision tower saw
                     them, the first steps' logits, the chunks).

pi0-FAST decodes greedily over the whole vocabulary, so a random model samples any token. Where
lerobot's decoding of a token is undefined (a FAST id below zero makes lerobot log a warning and
return zeros) the tiny models are steered off it: the head's rows of the ids that map below zero
are shrunk, so greedy decoding samples action tokens and text tokens (which map past the FAST
vocabulary and which lerobot's decoding skips). The `end` variant also grows the head's row of
`|`, the end of the actions, until greedy decoding emits it.

lerobot builds pi0-FAST only at its published size; pi0_reference.py's shrink applies (the Gemma
variants, the SigLIP tower, the vocabulary). The text tokenizer is byte-level with filler
tokens up to 1024 ids, so that the 512 FAST ids fit below the end of the vocabulary after
lerobot's 128 skipped ids. lerobot loads the FAST tokenizer with `AutoProcessor` and the hub
repository's remote code; offline, the same class from lerobot (`UniversalActionProcessor`)
reads the same cache folder.

Run: /path/to/python3.12 tools/reference/pi0fast_reference.py (after action_reference.py)
Needs: Python 3.12, lerobot 0.6.1 (tools/reference/requirements-actions.txt). Works offline.
"""

import json
import os
import pathlib
import shutil

OUT_ROOT = pathlib.Path(__file__).resolve().parent / "out"
OUT = OUT_ROOT / "pi0fast"
HF_HOME = OUT / "hf-home"
TEXT_TOKENIZER_ID = "google/paligemma-3b-pt-224"
ACTION_TOKENIZER_ID = "lerobot/fast-action-tokenizer"
REVISION = "f0a5f0a5f0a5f0a5f0a5f0a5f0a5f0a5f0a5f0a5"

if __name__ == "__main__":  # lerobot reads both tokenizers from this cache, offline
    os.environ["HF_HOME"] = str(HF_HOME)
    os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PaliGemmaConfig, PreTrainedTokenizerFast

import lerobot.policies.pi0_fast.modeling_pi0_fast as modeling_pi0_fast
import lerobot.processor.tokenizer_processor as tokenizer_processor
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.molmoact2.molmoact2_hf_model.action_tokenizer import UniversalActionProcessor
from lerobot.policies.pi0_fast.configuration_pi0_fast import PI0FastConfig
from lerobot.policies.pi0_fast.modeling_pi0_fast import PI0FastPolicy
from lerobot.policies.pi0_fast.processor_pi0_fast import make_pi0_fast_pre_post_processors
from pi0_reference import ACTION_DIM, IMAGE_SIZE, STATE, STATE_DIM, TASK, quantile_stats, shrink_lerobot
from smolvla_reference import camera_image, randomize, snapshot_dir

TEXT_VOCAB = 1024  # the byte symbols, then fillers; the special tokens come after
SPECIAL = ["<pad>", "<eos>", "<bos>"]
FAST_SKIP = 128

VARIANTS = {
    # Two cameras of other sizes than the model's; greedy decoding runs to its budget.
    "two-cameras": dict(
        cameras={"top": (3, 48, 64), "wrist": (3, 40, 40)},
        given=["top", "wrist"],
        end_boost=None,
        config=dict(chunk_size=8, n_action_steps=8, max_decoding_steps=24),
    ),
    # A wrist camera the observation lacks; `|` made likely, so decoding stops at it.
    "end": dict(
        cameras={"top": (3, 56, 56), "wrist": (3, 64, 64)},
        given=["top"],
        end_boost=[1.5, 2.0, 2.5, 3.0, 4.0, 5.0],
        config=dict(chunk_size=10, n_action_steps=6, max_decoding_steps=40),
    ),
}


def text_tokenizer(size=TEXT_VOCAB):
    """Byte-level BPE over the 256 byte symbols and fillers up to `size` ids, no merges,
    Gemma's special tokens after them, `<bos>` put first as PaliGemma's tokenizer does."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    vocab.update({f"<filler{i}>": i for i in range(len(alphabet), size)})
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens(SPECIAL)
    bos = bpe.token_to_id("<bos>")
    bpe.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", clean_up_tokenization_spaces=False)


def cache_folder(model_id, hf_home=HF_HOME):
    folder = snapshot_dir(hf_home, model_id, REVISION)
    folder.mkdir(parents=True)
    refs = folder.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text(folder.name)
    return folder


def write_tokenizers(hf_home=HF_HOME, size=TEXT_VOCAB):
    """Both tokenizers in the Hugging Face cache `hf_home`, the text tokenizer's base
    vocabulary `size` ids; returns the text tokenizer's length."""
    if hf_home.exists():
        shutil.rmtree(hf_home)
    folder = cache_folder(TEXT_TOKENIZER_ID, hf_home)
    tokenizer = text_tokenizer(size)
    tokenizer.save_pretrained(folder)
    PaliGemmaConfig(text_config=dict(vocab_size=len(tokenizer))).save_pretrained(folder)
    fast = OUT_ROOT / "fast-tokenizer"
    action_folder = cache_folder(ACTION_TOKENIZER_ID, hf_home)
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(fast / name, action_folder / name)
    return len(tokenizer)


class OfflineActionProcessor:
    """`AutoProcessor` for the FAST tokenizer's folder in the cache `$HF_HOME`: lerobot's own
    class, without the hub repository's remote code."""

    @staticmethod
    def from_pretrained(name, **_options):
        hf_home = pathlib.Path(os.environ["HF_HOME"])
        return UniversalActionProcessor.from_pretrained(str(snapshot_dir(hf_home, name, REVISION)))


def offline_action_tokenizer():
    """lerobot's pi0-FAST modules load the FAST tokenizer with `OfflineActionProcessor`."""
    modeling_pi0_fast.AutoProcessor = OfflineActionProcessor
    tokenizer_processor.AutoProcessor = OfflineActionProcessor


def policy_config(variant):
    spec = VARIANTS[variant]
    inputs = {f"observation.images.{cam}": PolicyFeature(type=FeatureType.VISUAL, shape=shape)
              for cam, shape in spec["cameras"].items()}
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    # A random model's tokens never begin with "Action: "; lerobot's check would refuse them.
    return PI0FastConfig(input_features=inputs, output_features=outputs, device="cpu", dtype="float32",
                         image_resolution=(IMAGE_SIZE, IMAGE_SIZE), push_to_hub=False, max_state_dim=8,
                         max_action_dim=8, tokenizer_max_length=96, validate_action_token_prefix=False,
                         **spec["config"])


def head_rows(policy):
    """PaliGemma's head (lerobot's checkpoints keep it apart from the token embedding)."""
    return policy.model.paligemma_with_expert.paligemma.lm_head.weight


def steer(policy):
    """Shrinks the head's rows of the ids that map below FAST id 0 (lerobot's decoding fails on
    them)."""
    tokenizer = policy._paligemma_tokenizer  # noqa: SLF001
    with torch.no_grad():
        head_rows(policy)[tokenizer.vocab_size - FAST_SKIP:] *= 0.05


def sample(policy, pre, observation):
    """lerobot's chunk for `observation`, with the logits of every step and the images seen."""
    logits, images = [], []
    head = policy.model.paligemma_with_expert.paligemma.lm_head
    head_forward = head.forward

    def traced_head(hidden):
        out = head_forward(hidden)
        logits.append(out[0, -1].clone())
        return out

    head.forward = traced_head
    owner = policy.model.paligemma_with_expert
    embed_image = owner.embed_image

    def traced_embed_image(image):
        images.append(image.clone())
        return embed_image(image)

    owner.embed_image = traced_embed_image
    tokens = {}
    sample_fast = policy.model.sample_actions_fast_kv_cache

    def traced_sample(*args, **kwargs):
        tokens["generated"] = sample_fast(*args, **kwargs)
        return tokens["generated"]

    policy.model.sample_actions_fast_kv_cache = traced_sample
    batch = pre(observation)
    with torch.no_grad():
        chunk = policy.predict_action_chunk(batch)
    head.forward, owner.embed_image = head_forward, embed_image
    policy.model.sample_actions_fast_kv_cache = sample_fast
    return batch, chunk, tokens["generated"][0].tolist()[: len(logits)], logits, images


def greedy_margin(logits):
    top = torch.stack([row.topk(2).values for row in logits])
    return float((top[:, 0] - top[:, 1]).min())


def make_variant(variant, seed, vocab):
    out = OUT / variant
    if out.exists():
        shutil.rmtree(out)
    (out / "golden").mkdir(parents=True)
    spec = VARIANTS[variant]
    config = policy_config(variant)
    torch.manual_seed(seed)
    policy = PI0FastPolicy(config).eval()
    randomize(policy, seed + 1)
    stats = quantile_stats(seed + 2)
    pre, post = make_pi0_fast_pre_post_processors(config, dataset_stats=stats)

    observation = {"observation.state": torch.tensor(STATE, dtype=torch.float32), "task": TASK}
    for i, cam in enumerate(spec["given"]):
        image = camera_image(cam, spec["cameras"][cam], seed + 10 + i)
        image.save(out / "golden" / f"{cam}.png")
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        observation[f"observation.images.{cam}"] = pixels.contiguous()

    end_id = policy._paligemma_tokenizer.convert_tokens_to_ids("|")  # noqa: SLF001
    steer(policy)
    embedding = head_rows(policy)
    end_row = embedding[end_id].clone()
    for boost in [1.0, *(spec["end_boost"] or [])]:
        with torch.no_grad():
            embedding[end_id] = end_row * boost
        batch, chunk, generated, logits, images = sample(policy, pre, observation)
        stopped = end_id in generated
        if not spec["end_boost"] or end_id in generated[4:]:
            break
    if spec["end_boost"] and end_id not in generated[4:]:
        raise SystemExit(f"{variant}: no boost of `|` made greedy decoding stop after a few tokens")
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    actions = post(chunk)

    tokenizer = policy._paligemma_tokenizer  # noqa: SLF001
    action_ids = [tokenizer.vocab_size - 1 - FAST_SKIP - t for t in generated[: generated.index(end_id)
                                                                               if stopped else None]]
    tensors = {"chunk_normalized": chunk[0].float().contiguous(), "actions": actions[0].float().contiguous()}
    for i, image in enumerate(images):
        tensors[f"pixels_{i}"] = image[0].float().contiguous()
    for i, row in enumerate(logits[:3]):
        tensors[f"logits_{i}"] = row.float().contiguous()
    save_file(tensors, str(out / "golden" / "golden.safetensors"))
    margin = greedy_margin(logits)
    golden = {
        "task": TASK,
        "state": STATE,
        "cameras": spec["given"],
        "token_ids": batch["observation.language.tokens"][0].tolist(),
        "token_mask": batch["observation.language.attention_mask"][0].int().tolist(),
        "generated": generated,
        "end_token": end_id,
        "stopped": stopped,
        "fast_tokens": action_ids,
        "greedy_margin": margin,
        "actions": actions[0].tolist(),
        "vocab": vocab,
    }
    (out / "golden" / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"pi0fast {variant}: {len(generated)} tokens (stopped at `|`: {stopped}), "
          f"{sum(0 <= a < 512 for a in action_ids)} FAST tokens, chunk {tuple(actions.shape)}, "
          f"smallest greedy margin {margin:.2e}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizers()
    shrink_lerobot(modeling_pi0_fast, vocab)
    build = modeling_pi0_fast.PaliGemmaForConditionalGenerationWithPiGemma

    def at_image_size(config):
        # pi0 sets the tower's image size from `image_resolution`; pi0-FAST keeps PaliGemma's
        # 224, which the test size overrides.
        config.vision_config.image_size = IMAGE_SIZE
        return build(config)

    modeling_pi0_fast.PaliGemmaForConditionalGenerationWithPiGemma = at_image_size
    offline_action_tokenizer()
    for i, variant in enumerate(VARIANTS):
        make_variant(variant, 20261210 + 100 * i, vocab)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The lerobot side of the pi0-FAST benchmark, and the maker of its policy: a pi0-FAST of the
published shape (PaliGemma 3B: SigLIP so400m at 224 px and the 18-layer, 2048-wide Gemma 2B
with its 257,152-token head; chunk 50) with seeded random weights, saved by lerobot 0.6.1's
own `save_pretrained`, so no download is needed. The text tokenizer is the byte-level one of
tools/reference/pi0fast_reference.py grown to PaliGemma's 257,152 ids (PaliGemma's own is not
downloadable here; the prompt's length, not its ids, is what costs time) and the FAST tokenizer
the one tools/reference/action_reference.py fitted. A random model never emits `|`, so every
chunk samples `max_decoding_steps` tokens (32 here, about what a trained policy spends on a
chunk of 50 steps of 6 joints); its head's rows of the ids that map below FAST token 0 are
shrunk as the reference does, so decoding stays defined.

  python3.12 benches/peers/pi0fast_lerobot.py make DIR   writes the policy folder (about 13 GB of
                                                         f32 weights), the tokenizers in
                                                         DIR/hf-home, and a 640x480 frame
  python3.12 benches/peers/pi0fast_lerobot.py time DIR REPS THREADS
                                                         prints JSON: lerobot's median time from
                                                         the PNG file to the unnormalized chunk,
                                                         where it goes, peak memory

Needs Python 3.12 and pip install -r tools/reference/requirements-actions.txt.
"""

import os
import pathlib
import sys

DIR = pathlib.Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else None
if DIR is not None:
    os.environ["HF_HOME"] = str(DIR / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "reference"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import pi0fast_reference as fast_ref  # noqa: E402
import smolvla_reference as ref  # noqa: E402
from smolvla_lerobot import time_policy  # noqa: E402

STATE_DIM, ACTION_DIM = 6, 6
PALIGEMMA_VOCAB = 257152 - 3  # the base vocabulary; the three special tokens come after
DECODING_STEPS = 32


def make(out):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.pi0_fast.configuration_pi0_fast import PI0FastConfig
    from lerobot.policies.pi0_fast.modeling_pi0_fast import PI0FastPolicy
    from lerobot.policies.pi0_fast.processor_pi0_fast import make_pi0_fast_pre_post_processors

    out.mkdir(parents=True, exist_ok=True)
    fast_ref.write_tokenizers(out / "hf-home", PALIGEMMA_VOCAB)
    fast_ref.offline_action_tokenizer()
    config = PI0FastConfig(
        input_features={"observation.images.top": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 480, 640)),
                        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))},
        device="cpu", dtype="float32", push_to_hub=False, max_decoding_steps=DECODING_STEPS,
        validate_action_token_prefix=False)
    torch.manual_seed(20261207)
    policy = PI0FastPolicy(config).eval()
    with torch.no_grad():  # wider than the default init where it is zero, so every path carries signal
        for name, param in policy.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 0.1)
    fast_ref.steer(policy)
    policy.save_pretrained(out)
    pre, post = make_pi0_fast_pre_post_processors(config, dataset_stats=ref.dataset_stats(20261209))
    pre.save_pretrained(out)
    post.save_pretrained(out)
    ref.camera_image("top", (3, 480, 640), 20261210).save(out / "frame.png")
    print(f"wrote {out}: {sum(p.numel() for p in policy.parameters()) / 1e6:.0f}M parameters")


def time_chunks(out, reps, threads):
    from lerobot.policies.pi0_fast.modeling_pi0_fast import PI0FastPolicy

    fast_ref.offline_action_tokenizer()
    time_policy(out, reps, threads, PI0FastPolicy, "paligemma_with_expert", samples_tokens=True)


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "make" and DIR is not None:
        make(DIR)
    elif command == "time" and len(sys.argv) == 5:
        time_chunks(DIR, int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

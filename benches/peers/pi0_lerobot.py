#!/usr/bin/env python3
"""The lerobot side of the pi0 benchmark, and the maker of its policy: a pi0 of the published
shape (PaliGemma 3B: SigLIP so400m at 224 px and the 18-layer, 2048-wide Gemma 2B; the 300M
Gemma expert; chunk 50, 10 denoising steps) with seeded random weights, saved by lerobot
0.6.1's own `save_pretrained`, so no download is needed. The tokenizer is the tiny Gemma-style
one of tools/reference/pi0_reference.py (PaliGemma's own is not downloadable here; the prompt's
length, not its ids, is what costs time).

  python3.12 benches/peers/pi0_lerobot.py make DIR    writes the policy folder (about 17 GB of f32
                                                      weights), the tokenizer in DIR/hf-home (a
                                                      Hugging Face cache), and a 640x480 frame
  python3.12 benches/peers/pi0_lerobot.py time DIR REPS THREADS
                                                      prints JSON: lerobot's median time from the
                                                      PNG file to the unnormalized chunk, where it
                                                      goes, peak memory

Needs Python 3.12 and pip install -r tools/reference/requirements-actions.txt.
"""

import os
import pathlib
import shutil
import sys

DIR = pathlib.Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else None
if DIR is not None:
    os.environ["HF_HOME"] = str(DIR / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "reference"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import smolvla_reference as ref  # noqa: E402
from smolvla_lerobot import time_policy  # noqa: E402

REFERENCE_HF_HOME = pathlib.Path(__file__).resolve().parents[2] / "tools/reference/out/pi0/hf-home"
STATE_DIM, ACTION_DIM = 6, 6


def make(out):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy
    from lerobot.policies.pi0.processor_pi0 import make_pi0_pre_post_processors

    out.mkdir(parents=True, exist_ok=True)
    if (out / "hf-home").exists():
        shutil.rmtree(out / "hf-home")
    shutil.copytree(REFERENCE_HF_HOME, out / "hf-home")
    config = PI0Config(
        input_features={"observation.images.top": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 480, 640)),
                        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))},
        device="cpu", dtype="float32", push_to_hub=False)
    torch.manual_seed(20261207)
    policy = PI0Policy(config).eval()
    with torch.no_grad():  # wider than the default init where it is zero, so every path carries signal
        for name, param in policy.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 0.1)
    policy.save_pretrained(out)
    pre, post = make_pi0_pre_post_processors(config, dataset_stats=ref.dataset_stats(20261209))
    pre.save_pretrained(out)
    post.save_pretrained(out)
    ref.camera_image("top", (3, 480, 640), 20261210).save(out / "frame.png")
    print(f"wrote {out}: {sum(p.numel() for p in policy.parameters()) / 1e6:.0f}M parameters")


def time_chunks(out, reps, threads):
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    time_policy(out, reps, threads, PI0Policy, "paligemma_with_expert")


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

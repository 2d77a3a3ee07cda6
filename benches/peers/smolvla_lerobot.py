#!/usr/bin/env python3
"""The lerobot side of the SmolVLA benchmark, and the maker of its policy: a SmolVLA of the
published shape (SmolVLM2-500M-Video-Instruct's towers, its text cut to 16 layers, the 0.75-wide
action expert, chunk 50, 10 denoising steps) with seeded random weights, saved by lerobot 0.6.1's
own `save_pretrained`, so no download is needed.

  python3.12 benches/peers/smolvla_lerobot.py make DIR   writes the policy folder (about 1.8 GB of
                                                          f32 weights), its backbone in
                                                          DIR/hf-home (a Hugging Face cache),
                                                          and a 512x512 test frame
  python3.12 benches/peers/smolvla_lerobot.py time DIR REPS THREADS
                                                          prints JSON: lerobot's median time
                                                          from the PNG file to the unnormalized
                                                          chunk, where it goes, peak memory

Needs Python 3.12 and pip install -r tools/reference/requirements-actions.txt.
"""

import json
import os
import pathlib
import resource
import statistics
import sys
import time

STARTED = time.time()
DIR = pathlib.Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else None
if DIR is not None:
    os.environ["HF_HOME"] = str(DIR / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "reference"))
import smolvla_reference as ref  # noqa: E402

BACKBONE_ID = "brainstem-bench/smolvlm2-500m-shaped"
# SmolVLM2-500M-Video-Instruct's published towers.
VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              image_size=512, patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
TEXT = dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
            num_key_value_heads=5, head_dim=64, rope_theta=100000.0, rms_norm_eps=1e-5, hidden_act="silu",
            max_position_embeddings=8192, vocab_size=49280, tie_word_embeddings=False)
SCALE_FACTOR = 4
STATE_DIM, ACTION_DIM = 6, 6
STATE = [0.3, -0.7, 1.1, 0.05, 0.4, -1.5]
TASK = "pick up the cube"


def make(out):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    out.mkdir(parents=True, exist_ok=True)
    hf_home = out / "hf-home"
    ref.write_backbone(hf_home, ref.snapshot_dir(hf_home, BACKBONE_ID), VISION, TEXT, SCALE_FACTOR)
    config = SmolVLAConfig(
        input_features={"observation.images.top": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 512, 512)),
                        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))},
        device="cpu", vlm_model_name=BACKBONE_ID, load_vlm_weights=False, push_to_hub=False)
    torch.manual_seed(20261207)
    policy = SmolVLAPolicy(config).eval()
    ref.randomize(policy, 20261208)
    policy.save_pretrained(out)
    pre, post = make_smolvla_pre_post_processors(config, dataset_stats=ref.dataset_stats(20261209))
    pre.save_pretrained(out)
    post.save_pretrained(out)
    ref.camera_image("top", (3, 512, 512), 20261210).save(out / "frame.png")
    print(f"wrote {out}: {sum(p.numel() for p in policy.parameters()) / 1e6:.0f}M parameters")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(obj, name, bucket):
    """Wraps `obj.name` so that its calls add their seconds to `bucket`."""
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = inner(*args, **kwargs)
        bucket.append(time.perf_counter() - start)
        return result

    setattr(obj, name, wrapper)


def time_chunks(out, reps, threads):
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    time_policy(out, reps, threads, SmolVLAPolicy, "vlm_with_expert")


def time_policy(out, reps, threads, policy_class, model_attr, samples_tokens=False):
    """Times `policy_class` loaded from `out`, from the PNG to the unnormalized chunk; the
    vision and prefix/expert times come from wrapping `policy.model.<model_attr>`'s
    `embed_image` and `forward` (the first forward of a chunk is the prefix). A policy that
    `samples_tokens` (pi0-FAST) samples one token a forward; their count is reported."""
    from lerobot.policies.factory import make_pre_post_processors

    torch.set_num_threads(threads)
    policy = policy_class.from_pretrained(str(out)).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(out))
    vision, expert_calls = [], []
    timed(getattr(policy.model, model_attr), "embed_image", vision)
    timed(getattr(policy.model, model_attr), "forward", expert_calls)
    noise = torch.randn(1, policy.config.chunk_size, policy.config.max_action_dim,
                        generator=torch.Generator().manual_seed(0))
    totals, first_chunk_at = [], None
    breakdown = []
    for _ in range(reps):
        vision.clear()
        expert_calls.clear()
        start = time.perf_counter()
        frame = np.asarray(Image.open(out / "frame.png").convert("RGB"), dtype=np.float32) / 255.0
        obs = {"observation.images.top": torch.from_numpy(frame).permute(2, 0, 1).contiguous(),
               "observation.state": torch.tensor(STATE), "task": TASK}
        with torch.no_grad():
            actions = post(policy.predict_action_chunk(pre(obs), noise=noise.clone()))
        totals.append(time.perf_counter() - start)
        if first_chunk_at is None:
            first_chunk_at = time.time()
        breakdown.append((sum(vision), expert_calls[0], sum(expert_calls[1:])))
        assert actions.shape[-2:] == (policy.config.chunk_size, ACTION_DIM)
    median = statistics.median(totals)
    pick = breakdown[totals.index(sorted(totals)[len(totals) // 2])]
    print(json.dumps({
        "engine": f"lerobot {__import__('lerobot').__version__}, PyTorch {torch.__version__}",
        "median_s": median, "vision_s": pick[0], "prefix_s": pick[1], "denoise_s": pick[2],
        "first_chunk_unix_s": first_chunk_at, "started_unix_s": STARTED, "peak_rss_mb": peak_rss_mb(),
        "forward_calls": len(expert_calls) if samples_tokens else None, "threads": threads, "reps": reps}))


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

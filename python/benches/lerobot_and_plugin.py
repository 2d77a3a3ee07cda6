#!/usr/bin/env python3
"""lerobot's SmolVLA on PyTorch and the same checkpoint through brainstem's lerobot plugin, in
one process, same threads, same frame, state, task and noise, each from lerobot's batch through
its preprocessor, `predict_action_chunk` and postprocessor; then what Python adds to a chunk
(the plugin's and brainstem.Policy's wall time less the time brainstem spent in the model).

  python benches/lerobot_and_plugin.py weights/smolvla-500m-shaped --reps 5 --threads 2

The policy folder is benches/peers/smolvla_lerobot.py's (`make DIR`); run with the Python that
tools/python-env.sh prints, after tools/test-python.sh has installed the packages.
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("policy", type=pathlib.Path)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default="f32,q8_0", help="brainstem's weights: f32 and block formats")
    args = parser.parse_args()
    os.environ["HF_HOME"] = str(args.policy.resolve() / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"

    import numpy as np
    import torch
    from PIL import Image

    import brainstem
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot_policy_brainstem import BrainstemPolicy, export

    torch.set_num_threads(args.threads)
    frame = np.asarray(Image.open(args.policy / "frame.png").convert("RGB"), dtype=np.float32) / 255.0

    def batch():
        return {
            "observation.images.top": torch.from_numpy(frame).permute(2, 0, 1).contiguous(),
            "observation.state": torch.tensor([0.3, -0.7, 1.1, 0.05, 0.4, -1.5]),
            "task": "pick up the cube",
        }

    def timed(policy, folder, noise):
        pre, post = make_pre_post_processors(policy.config, pretrained_path=str(folder))
        seconds, chunk = [], None
        for _ in range(args.reps):
            start = time.perf_counter()
            with torch.no_grad():
                chunk = post(policy.predict_action_chunk(pre(batch()), noise=noise.clone()))
            seconds.append(time.perf_counter() - start)
        return statistics.median(seconds), chunk

    rows = []
    lerobot = SmolVLAPolicy.from_pretrained(str(args.policy)).eval()
    noise = torch.randn(1, lerobot.config.chunk_size, lerobot.config.max_action_dim,
                        generator=torch.Generator().manual_seed(0))
    reference_s, _ = timed(lerobot, args.policy, noise)
    rows.append((f"lerobot {__import__('lerobot').__version__}, PyTorch {torch.__version__}", reference_s))
    del lerobot
    with tempfile.TemporaryDirectory() as scratch:
        for fmt in args.formats.split(","):
            options = {"threads": args.threads}
            if fmt != "f32":
                options.update(quantize=fmt, activations="int8")
            folder = export(args.policy, pathlib.Path(scratch) / fmt, **options)
            plugin = BrainstemPolicy.from_pretrained(folder)
            seconds, _ = timed(plugin, folder, noise)
            rows.append((f"brainstem plugin, {fmt}" + (", int8 activations" if fmt != "f32" else ""), seconds))
            del plugin

    # No chunk comparison here: these seeded random weights (std 0.1 at width 960) make the
    # model chaotic, so lerobot differs from itself by a third of the chunk's scale between
    # 1 and 2 threads; parity is the tiny reference checkpoints' (python/tests).
    print(f"| engine (one process, {args.threads} threads) | chunk (median of {args.reps}) | vs lerobot |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.0f} ms | {reference_s / seconds:.2f}x |")

    # What Python adds: wall time less the time in the model, per call, on the tiny reference
    # checkpoint (where the model's own time is smallest, so the overhead shows most).
    tiny = pathlib.Path(__file__).resolve().parents[2] / "tools/reference/out/smolvla/two-cameras"
    os.environ["HF_HOME"] = str(tiny.parent / "hf-home")
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from conftest import Golden

    case = Golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir, threads=args.threads)
    observation, noise = case.observation(), case.noise
    with tempfile.TemporaryDirectory() as scratch:
        plugin = BrainstemPolicy.from_pretrained(export(case.dir, pathlib.Path(scratch) / "tiny", threads=args.threads))
        pre, post = make_pre_post_processors(plugin.config, pretrained_path=scratch + "/tiny")
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in observation.items()}
        tensors["task"] = case.task
        for name, call, engine in [
            ("brainstem.Policy.predict_action_chunk", lambda: policy.predict_action_chunk(observation, task=case.task, noise=noise), policy),
            ("the plugin: preprocessor, predict_action_chunk, postprocessor",
             lambda: post(plugin.predict_action_chunk(pre(dict(tensors)), noise=torch.from_numpy(noise[None]))), plugin.engine),
        ]:
            overheads = []
            for _ in range(200):
                start = time.perf_counter()
                call()
                overheads.append((time.perf_counter() - start) * 1e3 - engine.last_inference_ms)
            print(f"Python overhead per chunk, {name}: median {statistics.median(overheads):.3f} ms, "
                  f"p95 {sorted(overheads)[189]:.3f} ms (200 chunks of the tiny reference SmolVLA)")


if __name__ == "__main__":
    main()

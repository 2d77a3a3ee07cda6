#!/usr/bin/env python3
"""The reaching task's comparison row: the same trained policy run by lerobot 0.6.1's PyTorch
in the same simulation, on the same seeds, as lerobot's own evaluation runs a policy: each
action step (`reach.FPS` a second) the camera's frame and the joints go through the policy's
preprocessor, `select_action` (a new chunk every `n_action_steps`) and the postprocessor, and
the action is the joints' target until the next step. Success is checked every control period
(`server.CONTROL_HZ`), as `brainstem eval sim` checks it.

Prints one JSON object: {"engine": "lerobot", "episodes": [...]} with, per episode, the
fields of brainstem's report (seed, success, seconds_to_success, final and closest distance,
the distance each control period) the milliseconds each `select_action` that computed a chunk took, and the episode's host seconds.

Run: python3.12 tools/sim/lerobot_rollout.py POLICY [--backbone DIR] [--episodes 20]
     [--first-seed 1000] [--seconds 6]
"""

import argparse
import atexit
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def episode(policy, pre, post, task, seed, seconds, reach, control_hz):
    import numpy as np
    import torch

    task.reset(seed)
    policy.reset()
    substeps = round(control_hz / reach.FPS)
    distances, chunk_ms, success = [task.distance()], [], None
    started_episode = time.perf_counter()
    for step in range(round(seconds * reach.FPS)):
        observation = {
            "observation.images.top": torch.from_numpy(task.image().transpose(2, 0, 1).astype(np.float32) / 255.0),
            "observation.state": torch.from_numpy(task.joints().astype(np.float32)),
            "task": reach.INSTRUCTION,
        }
        started = time.perf_counter()
        with torch.inference_mode():
            action = post(policy.select_action(pre(observation)))[0].numpy()
        if step % policy.config.n_action_steps == 0:  # this call computed a chunk
            chunk_ms.append(1e3 * (time.perf_counter() - started))
        for sub in range(substeps):
            task.step(action, 1.0 / control_hz)
            distances.append(task.distance())
            if distances[-1] <= reach.SUCCESS_RADIUS:
                success = (step * substeps + sub + 1) / control_hz
                break
        if success is not None:
            break
    return {"seed": seed, "success": success is not None, "seconds_to_success": success,
            "final_distance": distances[-1], "closest_distance": min(distances), "distances": distances,
            "chunk_ms": chunk_ms, "wall_seconds": time.perf_counter() - started_episode}


def hub_cache_for(policy, backbone):
    """A Hugging Face cache, in a temporary folder removed at exit, whose `vlm_model_name`
    entry is `backbone`."""
    name = json.loads((policy / "config.json").read_text())["vlm_model_name"]
    home = pathlib.Path(tempfile.mkdtemp(prefix="brainstem-hf-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    entry = home / "hub" / f"models--{name.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text("local")
    (entry / "snapshots").mkdir()
    (entry / "snapshots" / "local").symlink_to(backbone.resolve(), target_is_directory=True)
    return str(home)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", type=pathlib.Path)
    parser.add_argument("--backbone", type=pathlib.Path,
                        help="the policy's backbone folder (config and tokenizer), when the Hugging Face cache lacks it")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.backbone:
        os.environ["HF_HOME"] = hub_cache_for(args.policy, args.backbone)

    import reach
    import server
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    policy = SmolVLAPolicy.from_pretrained(str(args.policy)).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(args.policy))
    task = reach.ReachTask()
    episodes = [episode(policy, pre, post, task, args.first_seed + k, args.seconds, reach, server.CONTROL_HZ)
                for k in range(args.episodes)]
    print(json.dumps({"engine": "lerobot", "episodes": episodes}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the scripted expert's episodes of the reaching task (tools/sim/reach.py) as a
LeRobotDataset v3.0, by lerobot 0.6.1's own writer: the top camera's frames (PNG in the
parquet), the joints' measured positions as `observation.state` and the expert's joint
targets as `action`, at `reach.FPS` frames a second, `--seconds` an episode.

Episode k is the task reset with seed `--first-seed + k`: the training set takes seeds from
0, held-out sets from elsewhere (the evaluations use 1000 on), so none overlap.

Run: python3.12 tools/sim/make_dataset.py OUT [--episodes 120] [--first-seed 0]
"""

import argparse
import pathlib
import shutil
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reach  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402


def features():
    size = reach.IMAGE_SIZE
    return {
        "observation.images.top": {"dtype": "image", "shape": (size, size, 3),
                                   "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (len(reach.JOINTS),), "names": reach.JOINTS},
        "action": {"dtype": "float32", "shape": (len(reach.JOINTS),), "names": reach.JOINTS},
    }


def record_episode(dataset, task, seed, frames):
    """One expert episode; returns the step at which it first succeeded, or None."""
    task.reset(seed)
    reached = None
    for step in range(frames):
        action = reach.expert_action(task)
        dataset.add_frame({
            "observation.images.top": task.image(),
            "observation.state": task.joints().astype(np.float32),
            "action": action.astype(np.float32),
            "task": reach.INSTRUCTION,
        })
        task.step(action, 1.0 / reach.FPS)
        if reached is None and task.distance() <= reach.SUCCESS_RADIUS:
            reached = step + 1
    dataset.save_episode()
    return reached


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--episodes", type=int, default=120)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    dataset = LeRobotDataset.create(repo_id="brainstem/reach", fps=reach.FPS, features=features(),
                                    root=args.out, robot_type="brainstem_reach_arm", use_videos=False)
    task = reach.ReachTask()
    frames = round(args.seconds * reach.FPS)
    reached = [record_episode(dataset, task, args.first_seed + k, frames) for k in range(args.episodes)]
    dataset.finalize()
    succeeded = [r for r in reached if r is not None]
    print(f"{len(succeeded)}/{args.episodes} expert episodes reached the dot, "
          f"median {np.median(succeeded) / reach.FPS:.1f} s; written to {args.out}")


if __name__ == "__main__":
    main()

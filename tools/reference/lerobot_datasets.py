#!/usr/bin/env python3
"""Small LeRobotDataset reference datasets for `brainstem eval`, written by lerobot itself.

Writes, under tools/reference/out/lerobot/ (committed, small):
  v30-images/    LeRobotDataset v3.0 written by lerobot 0.6.1's `LeRobotDataset.create`,
                 camera frames stored as PNG bytes in the data parquet (use_videos=False);
                 three episodes of a 6-joint arm, one camera, all in one data file.
  v30-video/     the same kind of episodes with the camera stored as video (lerobot's default
                 encoder settings: AV1 through libsvtav1), all three in one MP4, each located
                 by its from_timestamp.
  v21-images/    LeRobotDataset v2.1: lerobot 0.6.1 writes only v3.0, so this is written with
                 Hugging Face `datasets` in the v2.1 layout (one parquet per episode,
                 episodes.jsonl, tasks.jsonl, episodes_stats.jsonl), then proven by running
                 lerobot's own v2.1 -> v3.0 converter on a copy and reading the result back
                 with `LeRobotDataset`, frame by frame.
  humanoid/      a short episode of dm-control's MuJoCo humanoid (suite/humanoid.xml, 21 hinge
                 joints) driven by smooth seeded torques, rendered offscreen (MUJOCO_GL=osmesa)
                 from its tracking camera; state is the joint angles, action the next frame's
                 joint angles (position targets), as position-controlled robots record them.
  bad/nan-action.parquet  episode 1 of v21-images with a NaN in frame 3's action, for the
                 tests of bad data (they swap it in on a copy).
  expected.json  what was written, for the Rust tests: per dataset and episode the task,
                 timestamps, state and action rows, and per camera the mean RGB of every
                 frame plus a few exact pixels.

Run: python3.12 tools/reference/lerobot_datasets.py
     python3.12 tools/reference/lerobot_datasets.py --bench DIR   (not committed: two datasets
     of camera-sized frames for the read benchmark in BENCHMARKS.md, DIR/bench-video with
     640x480 AV1 video and DIR/bench-images with PNG frames, 2 episodes of 10 s at 30 fps)
Needs: Python 3.12, pip install -r tools/reference/requirements-datasets.txt, and Debian's
libosmesa6 for the humanoid's offscreen rendering. Works offline.
"""

import argparse
import json
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("MUJOCO_GL", "osmesa")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "out" / "lerobot"
FPS = 10
ARM = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
TASKS = ["pick up the red cube", "push the cube to the left", "pick up the red cube"]
LENGTHS = [12, 9, 15]
CAMERA = "observation.images.front"
CAMERA_ID = "side"  # the humanoid's tracking camera


def arm_features(height, width, image_dtype):
    return {
        "observation.state": {"dtype": "float32", "shape": (len(ARM),), "names": ARM},
        "action": {"dtype": "float32", "shape": (len(ARM),), "names": ARM},
        CAMERA: {
            "dtype": image_dtype,
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        },
    }


def arm_state(episode, frame):
    """Smooth joint angles in radians: each joint a sine at its own phase."""
    t = frame / FPS
    return np.array(
        [0.4 * np.sin(1.3 * t + 0.7 * j + episode) + 0.1 * j for j in range(len(ARM))], dtype=np.float32
    )


def arm_frame(episode, frame, height, width):
    """A flat background whose colour changes with the episode and frame, and a white square
    moving right: flat areas survive a lossy codec, so mean colours can be checked."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = 40 + 12 * frame
    image[..., 1] = 30 + 70 * episode
    image[..., 2] = 200 - 8 * frame
    x = (4 + 3 * frame) % (width - 8)
    image[height // 4 : height // 4 + 8, x : x + 8] = 255
    return image


def write_arm_dataset(root, use_videos, height, width, **sizes):
    if root.exists():
        shutil.rmtree(root)
    dtype = "video" if use_videos else "image"
    dataset = LeRobotDataset.create(
        repo_id=f"brainstem/{root.name}",
        fps=FPS,
        features=arm_features(height, width, dtype),
        root=root,
        robot_type="so100_follower",
        use_videos=use_videos,
        **sizes,
    )
    for episode, (task, length) in enumerate(zip(TASKS, LENGTHS)):
        for frame in range(length):
            dataset.add_frame(
                {
                    "observation.state": arm_state(episode, frame),
                    "action": arm_state(episode, frame + 1),
                    CAMERA: arm_frame(episode, frame, height, width),
                    "task": task,
                }
            )
        dataset.save_episode()
    dataset.finalize()
    return dataset


def expected_from(root, repo_id):
    """What lerobot itself reads back: the reference the Rust reader is checked against."""
    dataset = LeRobotDataset(repo_id, root=root)
    episodes = []
    for episode in range(dataset.meta.total_episodes):
        start = dataset.meta.episodes[episode]["dataset_from_index"]
        end = dataset.meta.episodes[episode]["dataset_to_index"]
        rows = [dataset[i] for i in range(start, end)]
        cameras = {}
        for key in dataset.meta.camera_keys:
            frames = [(row[key].permute(1, 2, 0).numpy() * 255.0) for row in rows]
            cameras[key] = {
                "mean_rgb": [[float(c) for c in f.reshape(-1, 3).mean(axis=0)] for f in frames],
                "pixels": [[int(round(c)) for c in frames[0][y, x]] for y, x in [(0, 0), (5, 7)]],
            }
        episodes.append(
            {
                "episode_index": episode,
                "task": rows[0]["task"],
                "timestamps": [float(row["timestamp"]) for row in rows],
                "state": [row["observation.state"].tolist() for row in rows],
                "action": [row["action"].tolist() for row in rows],
                "cameras": cameras,
            }
        )
    return episodes


def hf_features(height, width):
    names = {"dtype": "float32"}
    return datasets.Features(
        {
            "observation.state": datasets.Sequence(datasets.Value(**names), length=len(ARM)),
            "action": datasets.Sequence(datasets.Value(**names), length=len(ARM)),
            CAMERA: datasets.Image(),
            "timestamp": datasets.Value("float32"),
            "frame_index": datasets.Value("int64"),
            "episode_index": datasets.Value("int64"),
            "index": datasets.Value("int64"),
            "task_index": datasets.Value("int64"),
        }
    )


def vector_stats(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return {
        "min": rows.min(axis=0).tolist(),
        "max": rows.max(axis=0).tolist(),
        "mean": rows.mean(axis=0).tolist(),
        "std": rows.std(axis=0).tolist(),
        "count": [len(rows)],
    }


def write_v21(root, height, width):
    """The v2.1 layout as lerobot 2.x wrote it: info.json, jsonl metadata, one parquet per
    episode under data/chunk-000/, images as PNG structs through `datasets.Image`."""
    from PIL import Image

    if root.exists():
        shutil.rmtree(root)
    (root / "meta").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    task_indices = {task: i for i, task in enumerate(dict.fromkeys(TASKS))}
    index = 0
    episodes, stats = [], []
    for episode, (task, length) in enumerate(zip(TASKS, LENGTHS)):
        state = [arm_state(episode, f).tolist() for f in range(length)]
        action = [arm_state(episode, f + 1).tolist() for f in range(length)]
        images = [Image.fromarray(arm_frame(episode, f, height, width)) for f in range(length)]
        table = {
            "observation.state": state,
            "action": action,
            CAMERA: images,
            "timestamp": [f / FPS for f in range(length)],
            "frame_index": list(range(length)),
            "episode_index": [episode] * length,
            "index": list(range(index, index + length)),
            "task_index": [task_indices[task]] * length,
        }
        data = datasets.Dataset.from_dict(table, features=hf_features(height, width))
        data.to_parquet(root / "data" / "chunk-000" / f"episode_{episode:06d}.parquet")
        index += length
        episodes.append({"episode_index": episode, "tasks": [task], "length": length})
        stats.append(
            {
                "episode_index": episode,
                "stats": {
                    "observation.state": vector_stats(state),
                    "action": vector_stats(action),
                    "timestamp": vector_stats([[f / FPS] for f in range(length)]),
                    "frame_index": vector_stats([[f] for f in range(length)]),
                    "episode_index": vector_stats([[episode]] * length),
                    "index": vector_stats([[i] for i in range(index - length, index)]),
                    "task_index": vector_stats([[task_indices[task]]] * length),
                    CAMERA: image_stats([np.asarray(im) for im in images]),
                },
            }
        )
    features = {k: dict(v) for k, v in arm_features(height, width, "image").items()}
    for key in features:
        features[key]["shape"] = list(features[key]["shape"])
    for key, dtype in [("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64")]:
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    features["index"] = {"dtype": "int64", "shape": [1], "names": None}
    features["task_index"] = {"dtype": "int64", "shape": [1], "names": None}
    info = {
        "codebase_version": "v2.1",
        "robot_type": "so100_follower",
        "total_episodes": len(TASKS),
        "total_frames": index,
        "total_tasks": len(task_indices),
        "total_videos": 0,
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": FPS,
        "splits": {"train": f"0:{len(TASKS)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": None,
        "features": features,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    jsonl = lambda rows: "".join(json.dumps(r) + "\n" for r in rows)  # noqa: E731
    (root / "meta" / "episodes.jsonl").write_text(jsonl(episodes))
    (root / "meta" / "tasks.jsonl").write_text(
        jsonl({"task_index": i, "task": t} for t, i in task_indices.items())
    )
    (root / "meta" / "episodes_stats.jsonl").write_text(jsonl(stats))


def image_stats(frames):
    pixels = np.stack(frames).astype(np.float64) / 255.0
    per_channel = lambda f: f(pixels, axis=(0, 1, 2)).reshape(3, 1, 1).tolist()  # noqa: E731
    return {
        "min": per_channel(np.min),
        "max": per_channel(np.max),
        "mean": per_channel(np.mean),
        "std": per_channel(np.std),
        "count": [len(frames)],
    }


def v21_read_by_lerobot(root):
    """Converts a copy with lerobot's v2.1 -> v3.0 converter and reads it back with lerobot."""
    from lerobot.scripts.convert_dataset_v21_to_v30 import convert_dataset

    with tempfile.TemporaryDirectory() as scratch:
        copy = pathlib.Path(scratch) / "v21"
        shutil.copytree(root, copy)
        convert_dataset(repo_id="brainstem/v21", root=copy, push_to_hub=False)
        return expected_from(copy, "brainstem/v21")


def write_nan_episode(v21_root, out):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(v21_root / "data" / "chunk-000" / "episode_000001.parquet")
    actions = table.column("action").to_pylist()
    actions[3][2] = float("nan")
    column = pa.array(actions, type=table.schema.field("action").type)
    table = table.set_column(table.schema.get_field_index("action"), "action", column)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)


def write_humanoid(root, seconds=2.0, fps=20, height=48, width=64):
    from dm_control import suite

    if root.exists():
        shutil.rmtree(root)
    env = suite.load("humanoid", "stand", task_kwargs={"random": 3})
    physics = env.physics
    hinges = [
        physics.model.id2name(j, "joint")
        for j in range(physics.model.njnt)
        if physics.model.jnt_type[j] == 3  # mjJNT_HINGE
    ]
    qpos_index = [physics.model.jnt_qposadr[physics.model.name2id(n, "joint")] for n in hinges]
    features = {
        "observation.state": {"dtype": "float32", "shape": (len(hinges),), "names": hinges},
        "action": {"dtype": "float32", "shape": (len(hinges),), "names": hinges},
        "observation.images.tracking": {
            "dtype": "image",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        },
    }
    dataset = LeRobotDataset.create(
        repo_id="brainstem/humanoid", fps=fps, features=features, root=root, robot_type="mujoco_humanoid",
        use_videos=False,
    )
    rng = np.random.default_rng(11)
    phases = rng.uniform(0, 2 * np.pi, env.action_spec().shape)
    steps_per_frame = max(1, round(1.0 / (fps * env.control_timestep())))
    env.reset()
    frames = int(seconds * fps)
    angles = lambda: physics.data.qpos[qpos_index].astype(np.float32).copy()  # noqa: E731
    state = angles()
    for frame in range(frames):
        image = physics.render(height, width, camera_id=CAMERA_ID)
        for _ in range(steps_per_frame):
            t = physics.data.time
            env.step(0.6 * np.sin(2.0 * t + phases))
        following = angles()
        dataset.add_frame(
            {
                "observation.state": state,
                "action": following,
                "observation.images.tracking": image,
                "task": "stand up and keep balance",
            }
        )
        state = following
    dataset.save_episode()
    dataset.finalize()


def bench_frame(episode, frame, height, width):
    """A camera-like frame: smooth gradients that drift, and a moving block."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = frame / 30.0
    image = np.stack(
        [
            128 + 100 * np.sin(x / 37.0 + t + episode),
            128 + 100 * np.sin(y / 23.0 - 0.7 * t),
            128 + 100 * np.sin((x + y) / 51.0 + 0.3 * t),
        ],
        axis=-1,
    ).astype(np.uint8)
    left = int(40 + 20 * frame) % (width - 64)
    image[height // 3 : height // 3 + 64, left : left + 64] = [220, 40, 40]
    return image


def write_bench(root, use_videos, episodes=2, seconds=10, fps=30, height=480, width=640):
    if root.exists():
        shutil.rmtree(root)
    features = arm_features(height, width, "video" if use_videos else "image")
    dataset = LeRobotDataset.create(
        repo_id=f"brainstem/{root.name}", fps=fps, features=features, root=root, use_videos=use_videos
    )
    for episode in range(episodes):
        for frame in range(seconds * fps):
            dataset.add_frame(
                {
                    "observation.state": arm_state(episode, frame),
                    "action": arm_state(episode, frame + 1),
                    CAMERA: bench_frame(episode, frame, height, width),
                    "task": TASKS[episode % len(TASKS)],
                }
            )
        dataset.save_episode()
    dataset.finalize()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", type=pathlib.Path, help="write the benchmark datasets here instead")
    args = parser.parse_args()
    if args.bench:
        write_bench(args.bench / "bench-video", use_videos=True)
        write_bench(args.bench / "bench-images", use_videos=False)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    write_arm_dataset(OUT / "v30-images", use_videos=False, height=24, width=32)
    expected["v30-images"] = expected_from(OUT / "v30-images", "brainstem/v30-images")
    write_arm_dataset(OUT / "v30-video", use_videos=True, height=64, width=64)
    expected["v30-video"] = expected_from(OUT / "v30-video", "brainstem/v30-video")
    write_v21(OUT / "v21-images", height=24, width=32)
    expected["v21-images"] = v21_read_by_lerobot(OUT / "v21-images")
    write_nan_episode(OUT / "v21-images", OUT / "bad" / "nan-action.parquet")
    write_humanoid(OUT / "humanoid")
    expected["humanoid"] = expected_from(OUT / "humanoid", "brainstem/humanoid")
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1))
    for name in expected:
        size = sum(p.stat().st_size for p in (OUT / name).rglob("*") if p.is_file())
        print(f"{name}: {len(expected[name])} episodes, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

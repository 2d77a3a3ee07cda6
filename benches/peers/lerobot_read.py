#!/usr/bin/env python3
"""The peer of benches/src/bin/dataset_read.rs: lerobot 0.6.1 reading every frame of a
LeRobotDataset the way its users do, `dataset[i]` for every index (parquet rows, and video
frames decoded by its default backend, torchcodec when it loads, else PyAV).

Run: python3.12 benches/peers/lerobot_read.py DATASET_ROOT --reps 3   (prints one JSON line)
"""

import argparse
import json
import statistics
import time

from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        dataset = LeRobotDataset("bench/peer", root=args.root)
        for i in range(len(dataset)):
            item = dataset[i]
            for key in dataset.meta.camera_keys:
                item[key].sum()
        times.append(time.perf_counter() - start)
    print(json.dumps({"engine": "lerobot 0.6.1", "median_s": statistics.median(times), "frames": len(dataset)}))


if __name__ == "__main__":
    main()

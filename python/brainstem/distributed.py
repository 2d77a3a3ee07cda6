"""Evaluation past one machine on Ray: each shard of the episode list is a Ray task that runs
`brainstem.evaluate` where the cluster places it, and the shards' reports are merged as
`brainstem eval merge` merges them. The same code runs on a laptop's local cluster
(`ray.init()`) and on a real one (`ray.init(address="auto")` on a node of it, or
`RAY_ADDRESS`); every node needs the `brainstem-runtime` package and the dataset (and
checkpoints) at the same paths, as a shared file system gives them.

    import ray, brainstem.distributed
    ray.init()
    report = brainstem.distributed.evaluate_on_ray("datasets/pick", shards=8, quantize="q8_0")
"""

from os import PathLike
from typing import Any

from ._brainstem import evaluate, merge_reports


def _evaluate_shard(dataset: str, shard: str, options: dict[str, Any]) -> dict:
    return evaluate(dataset, shard=shard, **options)


def evaluate_on_ray(
    dataset: str | PathLike[str], shards: int, *, cpus_per_shard: float = 1, **options: Any
) -> dict:
    """Evaluates `dataset` in `shards` Ray tasks of `cpus_per_shard` CPUs each and returns the
    merged report; `options` are `brainstem.evaluate`'s (config, vlm, vla, quantize,
    placement, device, episodes, cache)."""
    import ray

    if shards < 1:
        raise ValueError(f"shards must be 1 or more, found {shards}")
    if "shard" in options:
        raise ValueError("evaluate_on_ray makes the shards itself; pass shards=N instead of shard")
    if not ray.is_initialized():
        raise RuntimeError("call ray.init() (or ray.init(address=...) for a cluster) first")
    task = ray.remote(num_cpus=cpus_per_shard)(_evaluate_shard)
    pending = [task.remote(str(dataset), f"{i}/{shards}", options) for i in range(shards)]
    return merge_reports(ray.get(pending))

"""brainstem.evaluate and merge_reports against the CLI's evaluation of the v2.1 reference
dataset, and its shards run as Ray tasks on a local cluster merged into the single run."""

import json
import subprocess
from pathlib import Path

import pytest

import brainstem
import brainstem.distributed

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "tools" / "reference" / "out" / "lerobot" / "v21-images"
# What differs between two runs of the same evaluation: time on this machine.
WALL_CLOCK = {"wall_seconds", "read_seconds"}


def comparable(report: dict) -> dict:
    """The report without wall-clock times or the shard list."""
    episodes = [{k: v for k, v in e.items() if k not in WALL_CLOCK} for e in report["episodes"]]
    return {**{k: v for k, v in report.items() if k not in ("episodes", "shards")}, "episodes": episodes}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    cache = tmp_path_factory.mktemp("eval-cache")
    return brainstem.evaluate(DATASET, cache=cache), cache


def test_evaluate_returns_the_report(single):
    report, _ = single
    assert [e["episode"] for e in report["episodes"]] == [0, 1, 2]
    assert report["failures"] == []
    assert report["codebase_version"] == "v2.1"
    assert all(len(e["predicted"]) == len(e["recorded"]) > 0 for e in report["episodes"])


def test_shards_merge_into_the_single_run(single):
    report, cache = single
    shards = [brainstem.evaluate(DATASET, shard=f"{i}/2", cache=cache) for i in range(2)]
    assert [e["episode"] for e in shards[0]["episodes"]] == [0, 2]
    merged = brainstem.merge_reports([shards[0], json.dumps(shards[1])])
    assert [s["index"] for s in merged["shards"]] == [0, 1]
    assert comparable(merged) == comparable(report)


def test_ray_shards_equal_the_single_run(single):
    ray = pytest.importorskip("ray")
    report, cache = single
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        merged = brainstem.distributed.evaluate_on_ray(DATASET, shards=3, cache=str(cache))
    finally:
        ray.shutdown()
    assert len(merged["shards"]) == 3
    assert comparable(merged) == comparable(report)


def test_the_cli_writes_the_same_report(single, tmp_path):
    report, cache = single
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "brainstem"], cwd=ROOT, check=True)
    binary = ROOT / "target" / "release" / "brainstem"
    subprocess.run(
        [str(binary), "eval", "--dataset", str(DATASET), "--cache", str(cache), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    cli = json.loads((tmp_path / "report.json").read_text())
    assert comparable(cli) == comparable(report)


def test_bad_arguments_are_clear_exceptions(tmp_path):
    with pytest.raises(brainstem.BrainstemError, match="shard"):
        brainstem.evaluate(DATASET, shard="2/2", cache=tmp_path)
    with pytest.raises(brainstem.BrainstemError, match="no episode 9"):
        brainstem.evaluate(DATASET, episodes=[9], cache=tmp_path)
    with pytest.raises(brainstem.BrainstemError, match="info.json"):
        brainstem.evaluate(tmp_path, cache=tmp_path)
    with pytest.raises(brainstem.BrainstemError, match="placement"):
        brainstem.evaluate(DATASET, placement="three-chips", cache=tmp_path)
    with pytest.raises(brainstem.BrainstemError):
        brainstem.merge_reports(['{"not": "a report"}'])
    with pytest.raises(TypeError, match="report"):
        brainstem.merge_reports([3])
    with pytest.raises(ValueError, match="shards"):
        brainstem.distributed.evaluate_on_ray(DATASET, shards=0)

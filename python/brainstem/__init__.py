"""brainstem from Python: lerobot policies (SmolVLA, pi0, pi0.5, pi0-FAST) on brainstem's
kernels, the runtime that streams their actions into the motion decoder, and offline
evaluation.

    import brainstem
    policy = brainstem.Policy.load("path/to/smolvla", quantize="q8_0")
    chunk = policy.predict_action_chunk(observation, task="pick up the cube")

    report = brainstem.evaluate("datasets/pick", quantize="q8_0")

`brainstem.distributed.evaluate_on_ray` runs an evaluation's shards as Ray tasks.
"""

from ._brainstem import BrainstemError, Policy, Runtime, __version__, evaluate, merge_reports

__all__ = ["BrainstemError", "Policy", "Runtime", "__version__", "evaluate", "merge_reports"]

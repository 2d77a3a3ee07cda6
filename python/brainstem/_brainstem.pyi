"""Type stubs of brainstem's extension module."""

from os import PathLike
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import numpy.typing as npt

__version__: str

class BrainstemError(RuntimeError):
    """A model, configuration, observation or runtime brainstem refused, with what it
    expected and what it found."""

ArrayLike = npt.ArrayLike
"""A numpy array, a torch tensor (on any device; it is detached and moved to the CPU) or
anything numpy.asarray takes."""

class Policy:
    """A lerobot SmolVLA, pi0, pi0.5 or pi0-FAST checkpoint on brainstem's kernels."""

    @staticmethod
    def load(
        path: str | PathLike[str],
        quantize: Literal["q4_0", "q4_1", "q8_0", "q4_k", "q6_k"] | None = None,
        device: str = "cpu",
        *,
        activations: Literal["f32", "int8"] = "f32",
        threads: int | None = None,
        vlm: str | PathLike[str] | None = None,
        action_tokenizer: str | PathLike[str] | None = None,
        seed: int = 0,
    ) -> Policy:
        """Loads the folder `policy.save_pretrained` wrote. `quantize` picks a block format
        for the float weights, `activations="int8"` the int8 dot products (fastest with a
        quantized model); `device` is "cpu", "wgpu" or "wgpu:ADAPTER"; `threads` defaults
        to every core. `vlm` and `action_tokenizer` name tokenizer folders the Hugging Face
        cache lacks. Chunks drawn without given noise are seeded from `seed` onwards."""

    def predict_action_chunk(
        self,
        observation: Mapping[str, Any],
        task: str | Sequence[str] | None = None,
        noise: ArrayLike | None = None,
    ) -> npt.NDArray[np.float32]:
        """The unnormalized chunk, as lerobot's postprocessor returns it: [chunk_steps,
        action_dim], or [batch, chunk_steps, action_dim] for a batched observation.
        `observation` holds "observation.state" ([state_dim] or [batch, state_dim]) and
        "observation.images.<camera>" ([3, H, W] floats in [0, 1], or [H, W, 3] uint8, each
        batched like the state); `task` defaults to observation["task"]; `noise` is
        [chunk_size, max_action_dim] (batched like the observation)."""

    def select_action(
        self,
        observation: Mapping[str, Any],
        task: str | Sequence[str] | None = None,
        noise: ArrayLike | None = None,
    ) -> npt.NDArray[np.float32]:
        """The next action from a queue of the first n_action_steps of a chunk, a new chunk
        made when it is empty: [action_dim], or [batch, action_dim]."""

    def reset(self) -> None:
        """Empties the action queue (at an episode's start)."""

    @property
    def type(self) -> Literal["smolvla", "pi0", "pi05", "pi0_fast"]: ...
    @property
    def path(self) -> PathLike[str]: ...
    @property
    def device(self) -> str: ...
    @property
    def quantize(self) -> str | None: ...
    @property
    def cameras(self) -> list[str]: ...
    @property
    def state_dim(self) -> int: ...
    @property
    def action_dim(self) -> int: ...
    @property
    def chunk_size(self) -> int: ...
    @property
    def chunk_steps(self) -> int: ...
    @property
    def n_action_steps(self) -> int: ...
    @property
    def max_action_dim(self) -> int: ...
    @property
    def last_inference_ms(self) -> float:
        """Milliseconds the last chunk-making call spent in the model; its wall time less
        this is what Python added."""

class Runtime:
    """A running brainstem runtime: the robot's brain (VLM, VLT, VLA on their partitions)
    and cerebellum (the motion decoder at the control rate)."""

    def __init__(
        self,
        config: str | PathLike[str] | None = None,
        *,
        toml: str | None = None,
        cache_dir: str | PathLike[str] | None = None,
    ) -> None:
        """Starts from a TOML file, TOML text, or (with neither) the built-in demo robot."""

    def now_ns(self) -> int: ...
    def push_frame(
        self, frames: npt.NDArray[np.uint8] | Sequence[npt.NDArray[np.uint8]], captured_ns: int | None = None
    ) -> int:
        """One [H, W, 3] uint8 frame per camera (a list in camera order for several)."""

    def push_state(
        self,
        positions: Sequence[float] | npt.NDArray[np.float64],
        velocities: Sequence[float] | npt.NDArray[np.float64] | None = None,
        captured_ns: int | None = None,
    ) -> None: ...
    def set_instruction(self, text: str) -> None: ...
    def ask(self, question: str) -> int: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def emergency_stop(self) -> None: ...
    def next_event(self, timeout_s: float = 0.0) -> dict[str, dict[str, Any]] | None:
        """The next event, {"Plan" | "Answer" | "Chunk" | ...: {...}}, or None."""

    def commands(self) -> dict[str, Any]:
        """The motion decoder's commands since the last call: tick, time_ns, mode ([n]) and
        positions, velocities, accelerations ([n, joints]), plus the count dropped."""

    @property
    def joint_count(self) -> int: ...
    @property
    def camera_count(self) -> int: ...
    @property
    def subtask(self) -> str | None: ...
    def telemetry(self) -> dict[str, Any]: ...
    def stop(self) -> dict[str, Any] | None: ...
    def __enter__(self) -> Runtime: ...
    def __exit__(self, *args: object) -> bool: ...

def evaluate(
    dataset: str | PathLike[str],
    *,
    config: str | PathLike[str] | None = None,
    vlm: str | PathLike[str] | None = None,
    vla: str | PathLike[str] | None = None,
    vla_backbone: str | PathLike[str] | None = None,
    quantize: str | None = None,
    placement: Literal["split", "vla-with-brain", "two-chips", "one-chip"] | None = None,
    device: str | None = None,
    episodes: Sequence[int] | None = None,
    shard: str | None = None,
    cache: str | PathLike[str] = "weights",
) -> dict[str, Any]:
    """Replays a LeRobotDataset's episodes (all, or `episodes`, then the shard "i/n") through
    the runtime the robot uses and returns the report `brainstem eval` writes as report.json."""

def merge_reports(reports: Sequence[dict[str, Any] | str]) -> dict[str, Any]:
    """One report from the reports of an evaluation's shards, as `brainstem eval merge`."""

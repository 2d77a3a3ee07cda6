"""The `brainstem` policy type's configuration: which lerobot checkpoint brainstem runs and
how (block format, activation precision, threads), with the checkpoint's own features, chunk
size and action steps, so lerobot's tools see the policy they would see without brainstem."""

from dataclasses import dataclass

from lerobot.configs.policies import PreTrainedConfig
from lerobot.optim.optimizers import AdamWConfig


@PreTrainedConfig.register_subclass("brainstem")
@dataclass
class BrainstemConfig(PreTrainedConfig):
    # The lerobot policy folder (SmolVLA, pi0, pi0.5, pi0-FAST) that brainstem loads.
    checkpoint: str = ""
    # None (the checkpoint's floats) or a block format: q4_0, q4_1, q8_0, q4_k, q6_k.
    quantize: str | None = None
    # "f32", or "int8" for int8 dot products against quantized weights.
    activations: str = "f32"
    # CPU worker threads; None for every core.
    threads: int | None = None
    # "cpu", "wgpu" or "wgpu:ADAPTER": where brainstem runs (lerobot's `device` stays "cpu").
    brainstem_device: str = "cpu"
    # Tokenizer folders the Hugging Face cache lacks (SmolVLA's backbone, pi0-FAST's FAST).
    vlm: str | None = None
    action_tokenizer: str | None = None
    # Seed of the noise of chunks drawn without given noise.
    seed: int = 0
    # Copied from the checkpoint by `export`.
    chunk_size: int = 50
    n_action_steps: int = 50

    def __post_init__(self) -> None:
        # brainstem keeps its tensors itself; lerobot's side only moves the batch to the CPU.
        self.device = "cpu"
        super().__post_init__()
        if not 0 < self.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"n_action_steps must be in 1..chunk_size ({self.chunk_size}), found {self.n_action_steps}"
            )

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self) -> AdamWConfig:
        raise NotImplementedError("brainstem runs policies; train them with lerobot's own policy type")

    def get_scheduler_preset(self) -> None:
        return None

    def validate_features(self) -> None:
        if not self.checkpoint:
            raise ValueError("the brainstem policy needs `checkpoint`: the lerobot policy folder it runs")

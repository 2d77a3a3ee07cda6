"""`BrainstemPolicy`: a lerobot `PreTrainedPolicy` whose inference is brainstem's. It takes the
batches lerobot's tools build (float images in [0, 1], the raw joint state, the task) and
returns unnormalized actions, since brainstem applies the checkpoint's own preprocessing and
postprocessing inside; training stays with lerobot's own policy types."""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

import brainstem
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.pretrained import PreTrainedPolicy

from .configuration_brainstem import BrainstemConfig

# The batch keys brainstem reads; lerobot's processors may add others (tokens, padding masks).
_PREFIXES = ("observation.state", "observation.images.", "task")


def _observation(batch: dict) -> dict:
    """The part of a lerobot batch brainstem reads, tensors kept as they are (brainstem
    detaches them and takes them to the CPU without a copy where it can)."""
    return {key: value for key, value in batch.items() if key.startswith(_PREFIXES)}


class BrainstemPolicy(PreTrainedPolicy):
    config_class = BrainstemConfig
    name = "brainstem"

    def __init__(self, config: BrainstemConfig, **kwargs):
        super().__init__(config)
        config.validate_features()
        self.config = config
        self.engine = brainstem.Policy.load(
            config.checkpoint,
            quantize=config.quantize,
            device=config.brainstem_device,
            activations=config.activations,
            threads=config.threads,
            vlm=config.vlm,
            action_tokenizer=config.action_tokenizer,
            seed=config.seed,
        )
        # lerobot's tools read the policy's device from its parameters and buffers.
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *, config: PreTrainedConfig | None = None, **kwargs):
        """Loads a folder `export` wrote. Its weights are the checkpoint's, which brainstem
        memory-maps itself, so nothing goes through torch's state dict."""
        if config is None:
            config = PreTrainedConfig.from_pretrained(pretrained_name_or_path)
        if not isinstance(config, BrainstemConfig):
            raise ValueError(
                f"{pretrained_name_or_path} holds a {config.type!r} policy; make a brainstem folder from it with "
                "`python -m lerobot_policy_brainstem export CHECKPOINT OUT`"
            )
        checkpoint = Path(config.checkpoint)
        if not checkpoint.is_absolute():
            config.checkpoint = str(Path(pretrained_name_or_path) / checkpoint)
        return cls(config).eval()

    def get_optim_params(self) -> dict:
        return {}

    def reset(self) -> None:
        self.engine.reset()

    def forward(self, batch: dict[str, Tensor], **kwargs):
        raise NotImplementedError("brainstem runs policies; train them with lerobot's own policy type")

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], noise: Tensor | None = None, **kwargs) -> Tensor:
        """The chunk, [batch, chunk steps, action dims], unnormalized."""
        chunk = self.engine.predict_action_chunk(_observation(batch), noise=noise)
        return torch.from_numpy(np.ascontiguousarray(chunk))

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], noise: Tensor | None = None, **kwargs) -> Tensor:
        """The next action, [batch, action dims], from brainstem's queue of `n_action_steps`."""
        return torch.from_numpy(self.engine.select_action(_observation(batch), noise=noise))

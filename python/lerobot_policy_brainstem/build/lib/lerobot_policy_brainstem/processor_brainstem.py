"""The `brainstem` policy type's processors. brainstem normalizes, tokenizes and resizes
inside with the checkpoint's own statistics and tokenizer, so the preprocessor only renames
(as a rename map asks), adds the batch dimension and moves tensors to the CPU, and the
postprocessor only moves actions there."""

from typing import Any

import torch

from lerobot.processor import AddBatchDimensionProcessorStep, DeviceProcessorStep, RenameObservationsProcessorStep
from lerobot.processor.factory import make_policy_processor_pipelines

from .configuration_brainstem import BrainstemConfig


def make_brainstem_pre_post_processors(
    config: BrainstemConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[Any, Any]:
    return make_policy_processor_pipelines(
        # The renaming step is lerobot's default one: its async-inference server overrides
        # it by name.
        input_steps=[
            RenameObservationsProcessorStep(rename_map={}),
            AddBatchDimensionProcessorStep(),
            DeviceProcessorStep(device="cpu"),
        ],
        output_steps=[DeviceProcessorStep(device="cpu")],
    )

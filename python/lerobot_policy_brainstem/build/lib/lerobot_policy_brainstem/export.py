"""`export`: a folder lerobot's tools load as a `brainstem` policy, made from a lerobot
checkpoint: the brainstem configuration (naming the checkpoint, with its features, chunk size
and action steps) and the processors, written by lerobot's own `save_pretrained`."""

from pathlib import Path

from lerobot.configs.policies import PreTrainedConfig

from .configuration_brainstem import BrainstemConfig
from .processor_brainstem import make_brainstem_pre_post_processors


def export(checkpoint: str | Path, out: str | Path, **options) -> Path:
    """Writes `out` for the lerobot policy folder `checkpoint`; `options` are
    `BrainstemConfig`'s (quantize, activations, threads, brainstem_device, vlm,
    action_tokenizer, seed, n_action_steps)."""
    checkpoint = Path(checkpoint).resolve()
    source = PreTrainedConfig.from_pretrained(checkpoint)
    options.setdefault("n_action_steps", source.n_action_steps)
    config = BrainstemConfig(
        checkpoint=str(checkpoint),
        input_features=source.input_features,
        output_features=source.output_features,
        chunk_size=source.chunk_size,
        **options,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config._save_pretrained(out)
    preprocessor, postprocessor = make_brainstem_pre_post_processors(config)
    preprocessor.save_pretrained(out)
    postprocessor.save_pretrained(out)
    return out

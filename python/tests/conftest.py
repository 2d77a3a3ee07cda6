"""Shared fixtures: the tiny lerobot checkpoints and golden tensors tools/reference made with
lerobot 0.6.1 (tools/reference/out), turned into the observation dicts lerobot passes."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

REFERENCE = Path(__file__).resolve().parents[2] / "tools" / "reference" / "out"

# Each family's variants, as the Rust parity tests run them.
FLOW_VARIANTS = [
    ("smolvla", "two-cameras"),
    ("smolvla", "missing-camera"),
    ("pi0", "two-cameras"),
    ("pi0", "missing-camera"),
    ("pi05", "two-cameras"),
]

# The family whose Hugging Face cache holds a family's tokenizers (pi0.5 shares pi0's).
TOKENIZERS_OF = {"pi05": "pi0"}


class Golden:
    """One reference case: the policy folder, what lerobot was given and what it returned."""

    def __init__(self, family: str, variant: str):
        self.family = family
        self.dir = REFERENCE / family / variant
        golden = self.dir / "golden"
        self.text = json.loads((golden / "golden.json").read_text())
        self.tensors = load_file(str(golden / "golden.safetensors"))
        noise_file = golden / "noise.safetensors"
        # lerobot's noise is [1, chunk_size, max_action_dim]; the tests pass it unbatched.
        self.noise = load_file(str(noise_file))["noise"][0] if noise_file.exists() else None
        self.frames = {
            camera: np.asarray(Image.open(golden / f"{camera}.png").convert("RGB"))
            for camera in self.text["cameras"]
        }
        self.hf_home = REFERENCE / TOKENIZERS_OF.get(family, family) / "hf-home"

    def observation(self, uint8: bool = False) -> dict:
        """The observation as lerobot's dataloader gives it: float [3, H, W] frames in [0, 1],
        or as a camera gives it: uint8 [H, W, 3]."""
        observation = {"observation.state": np.asarray(self.text["state"], dtype=np.float32)}
        for camera, frame in self.frames.items():
            image = frame if uint8 else frame.transpose(2, 0, 1).astype(np.float32) / 255.0
            observation[f"observation.images.{camera}"] = image
        return observation

    @property
    def task(self) -> str:
        return self.text["task"]


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference over the reference's largest magnitude."""
    scale = max(float(np.abs(reference).max()), 1e-12)
    return float(np.abs(ours - reference).max()) / scale


@pytest.fixture
def golden(monkeypatch):
    """Loads a reference case, pointing the Hugging Face cache at its tokenizer folders."""

    def load(family: str, variant: str) -> Golden:
        case = Golden(family, variant)
        monkeypatch.setenv("HF_HOME", str(case.hf_home))
        monkeypatch.delenv("HF_HUB_CACHE", raising=False)
        return case

    return load

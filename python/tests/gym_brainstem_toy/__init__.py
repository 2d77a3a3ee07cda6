"""A toy reaching task for lerobot-eval, registered as lerobot env type `brainstem_toy` (and
gym id `gym_brainstem_toy/Reach-v0`) the way third-party envs register: two cameras showing
fixed frames, a six-joint state, an action that sets the joint targets, and success when the
joints come within `tolerance` of `goal`. It appends every action it is sent to `record`, so
a test can check which policy acted."""

import json
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig
from PIL import Image

JOINTS = 6


@EnvConfig.register_subclass("brainstem_toy")
@dataclass
class BrainstemToyEnv(EnvConfig):
    task: str | None = "Reach-v0"
    fps: int = 10
    episode_length: int = 4
    # PNG frames per camera, the starting joint state, the goal, and where to record actions.
    frames: dict[str, str] = field(default_factory=dict)
    state: list[float] = field(default_factory=lambda: [0.0] * JOINTS)
    goal: list[float] = field(default_factory=lambda: [0.0] * JOINTS)
    tolerance: float = 0.05
    instruction: str = "pick up the cube"
    record: str = ""
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(JOINTS,)),
                         "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(JOINTS,))}
        self.features_map = {"action": "action", "agent_pos": "observation.state"}
        for camera, path in self.frames.items():
            height, width = Image.open(path).size[::-1]
            self.features[f"pixels/{camera}"] = PolicyFeature(type=FeatureType.VISUAL, shape=(height, width, 3))
            self.features_map[f"pixels/{camera}"] = f"observation.images.{camera}"

    @property
    def gym_kwargs(self) -> dict:
        return {
            "frames": self.frames,
            "state": self.state,
            "goal": self.goal,
            "tolerance": self.tolerance,
            "instruction": self.instruction,
            "record": self.record,
            "max_episode_steps": self.episode_length,
        }


class ReachEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, frames, state, goal, tolerance, instruction, record, render_mode="rgb_array"):
        self.frames = {c: np.asarray(Image.open(p).convert("RGB")) for c, p in frames.items()}
        self.start = np.asarray(state, dtype=np.float64)
        self.goal = np.asarray(goal, dtype=np.float64)
        self.tolerance = tolerance
        self.task_description = instruction
        self.task = instruction
        self.record = record
        self.render_mode = render_mode
        self.state = self.start.copy()
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Dict(
                    {c: spaces.Box(0, 255, f.shape, dtype=np.uint8) for c, f in self.frames.items()}
                ),
                "agent_pos": spaces.Box(-np.inf, np.inf, (JOINTS,), dtype=np.float64),
            }
        )
        self.action_space = spaces.Box(-np.inf, np.inf, (JOINTS,), dtype=np.float32)

    def _observation(self):
        return {"pixels": {c: f.copy() for c, f in self.frames.items()}, "agent_pos": self.state.copy()}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.start.copy()
        return self._observation(), {"is_success": False}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if self.record:
            with open(self.record, "a") as f:
                f.write(json.dumps(action.tolist()) + "\n")
        self.state = action
        distance = float(np.abs(self.state - self.goal).max())
        success = distance < self.tolerance
        return self._observation(), -distance, success, False, {"is_success": success}

    def render(self):
        return next(iter(self.frames.values())).copy()


gym.register(id="gym_brainstem_toy/Reach-v0", entry_point=ReachEnv)

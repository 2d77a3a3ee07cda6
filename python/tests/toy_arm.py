"""A six-joint arm with two cameras that lerobot's RobotClient can drive without hardware,
registered as robot type `brainstem_toy_arm` the way third-party robots register: it shows
fixed frames and a fixed joint state, and records every action it is sent."""

import threading
from dataclasses import dataclass, field

import numpy as np
from lerobot.robots.config import RobotConfig
from lerobot.robots.robot import Robot

JOINTS = [f"joint_{i}.pos" for i in range(6)]


@RobotConfig.register_subclass("brainstem_toy_arm")
@dataclass
class ToyArmConfig(RobotConfig):
    frames: dict = field(default_factory=dict)  # camera -> [H, W, 3] uint8
    state: list = field(default_factory=list)


class ToyArm(Robot):
    config_class = ToyArmConfig
    name = "brainstem_toy_arm"

    def __init__(self, config: ToyArmConfig):
        super().__init__(config)
        self.config = config
        self.connected = False
        self.actions: list[dict] = []
        self.lock = threading.Lock()

    @property
    def observation_features(self) -> dict:
        return {**{joint: float for joint in JOINTS}, **{c: f.shape for c, f in self.config.frames.items()}}

    @property
    def action_features(self) -> dict:
        return {joint: float for joint in JOINTS}

    @property
    def is_connected(self) -> bool:
        return self.connected

    def connect(self, calibrate: bool = True) -> None:
        self.connected = True

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def get_observation(self) -> dict:
        observation = {joint: float(value) for joint, value in zip(JOINTS, self.config.state)}
        observation.update({camera: np.array(frame) for camera, frame in self.config.frames.items()})
        return observation

    def send_action(self, action: dict) -> dict:
        with self.lock:
            self.actions.append(dict(action))
        return action

    def disconnect(self) -> None:
        self.connected = False

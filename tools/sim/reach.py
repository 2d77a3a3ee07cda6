"""The reaching task brainstem's trained policy learns and is evaluated on, in MuJoCo.

A two-link arm on a table turns about two vertical hinges (shoulder and elbow, radians); a
red dot lies somewhere within its reach; a camera above the table sees both. The instruction
names the dot. The arm's joints are position-controlled: an action is the two joints'
target positions. The episode succeeds when the fingertip comes within `SUCCESS_RADIUS` of
the dot's centre.

Everything random comes from the episode's seed: where the dot lies and where the arm starts.
The scripted expert (`expert_action`) moves both joints toward the inverse-kinematics
solution at a bounded speed.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

INSTRUCTION = "touch the red dot"
JOINTS = ["shoulder", "elbow"]
UPPER, FORE = 0.12, 0.10  # link lengths, metres
SUCCESS_RADIUS = 0.02
FPS = 10  # the dataset's and the policy's action rate
PHYSICS_DT = 0.002
IMAGE_SIZE = 64
EXPERT_STEP = 0.12  # radians per action step at most (1.2 rad/s)
JOINT_RANGE = 2.6

MJCF = f"""
<mujoco model="brainstem-reach">
  <compiler angle="radian"/>
  <option timestep="{PHYSICS_DT}" integrator="implicitfast"/>
  <visual><global offwidth="256" offheight="256"/><headlight ambient="0.6 0.6 0.6" diffuse="0.4 0.4 0.4"/></visual>
  <default>
    <geom contype="0" conaffinity="0"/>
    <joint type="hinge" axis="0 0 1" range="-{JOINT_RANGE} {JOINT_RANGE}" armature="0.002" damping="0.05"/>
    <position kp="2.0" dampratio="1.0" ctrlrange="-{JOINT_RANGE} {JOINT_RANGE}"/>
  </default>
  <worldbody>
    <geom name="table" type="plane" size="0.3 0.3 0.01" rgba="0.82 0.82 0.78 1"/>
    <body name="target" mocap="true" pos="0.15 0 0.001">
      <geom name="dot" type="cylinder" size="0.02 0.001" rgba="0.9 0.1 0.1 1"/>
    </body>
    <geom name="base" type="cylinder" size="0.02 0.01" pos="0 0 0.01" rgba="0.3 0.3 0.3 1"/>
    <body name="upper" pos="0 0 0.03">
      <joint name="shoulder"/>
      <geom type="capsule" fromto="0 0 0 {UPPER} 0 0" size="0.012" rgba="0.15 0.25 0.7 1"/>
      <body name="fore" pos="{UPPER} 0 0.005">
        <joint name="elbow"/>
        <geom type="capsule" fromto="0 0 0 {FORE} 0 0" size="0.009" rgba="0.1 0.55 0.25 1"/>
        <geom name="fingertip" type="sphere" pos="{FORE} 0 0" size="0.012" rgba="0.95 0.85 0.1 1"/>
      </body>
    </body>
    <camera name="top" pos="0 0 0.75" xyaxes="0 -1 0 1 0 0" fovy="36"/>
  </worldbody>
  <actuator>
    <position name="shoulder" joint="shoulder"/>
    <position name="elbow" joint="elbow"/>
  </actuator>
</mujoco>
"""


def inverse_kinematics(x, y):
    """The joint angles (elbow bent positive) that put the fingertip at (x, y)."""
    r2 = x * x + y * y
    cos_elbow = np.clip((r2 - UPPER**2 - FORE**2) / (2 * UPPER * FORE), -1.0, 1.0)
    elbow = np.arccos(cos_elbow)
    shoulder = np.arctan2(y, x) - np.arctan2(FORE * np.sin(elbow), UPPER + FORE * np.cos(elbow))
    return np.array([shoulder, elbow])


class ReachTask:
    """One MuJoCo simulation of the task, reset per episode."""

    def __init__(self, image_size=IMAGE_SIZE):
        self.model = mujoco.MjModel.from_xml_string(MJCF)
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, image_size, image_size)
        self.tip = self.model.geom("fingertip").id
        self.goal = np.zeros(2)

    def reset(self, seed):
        """Places the dot and the arm as episode `seed` has them; returns the goal (x, y)."""
        rng = np.random.default_rng(seed)
        radius = rng.uniform(0.09, 0.20)
        angle = rng.uniform(-1.9, 1.9)
        self.goal = np.array([radius * np.cos(angle), radius * np.sin(angle)])
        mujoco.mj_resetData(self.model, self.data)
        self.data.mocap_pos[0, :2] = self.goal
        start = np.array([rng.uniform(-1.2, 1.2), rng.uniform(0.3, 2.0)])
        self.data.qpos[:2] = start
        self.data.ctrl[:2] = start
        mujoco.mj_forward(self.model, self.data)
        return self.goal.copy()

    def step(self, targets, seconds):
        """Holds the joints' targets for `seconds` of simulated time."""
        self.data.ctrl[:2] = np.clip(targets, -JOINT_RANGE, JOINT_RANGE)
        for _ in range(max(1, round(seconds / PHYSICS_DT))):
            mujoco.mj_step(self.model, self.data)

    def joints(self):
        return self.data.qpos[:2].copy()

    def velocities(self):
        return self.data.qvel[:2].copy()

    def image(self):
        """The top camera's view, [H, W, 3] uint8."""
        self.renderer.update_scene(self.data, camera="top")
        return self.renderer.render().copy()

    def distance(self):
        """How far the fingertip is from the dot's centre, metres."""
        return float(np.linalg.norm(self.data.geom_xpos[self.tip, :2] - self.goal))

    def time(self):
        return float(self.data.time)


def expert_action(task):
    """The scripted expert's next joint targets: toward the inverse kinematics, bounded."""
    joints = task.joints()
    wanted = inverse_kinematics(*task.goal)
    return joints + np.clip(wanted - joints, -EXPERT_STEP, EXPERT_STEP)

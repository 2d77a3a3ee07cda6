"""The lerobot plugin (python/lerobot_policy_brainstem) inside lerobot's own code: discovered
by lerobot's plugin mechanism, loaded by its factory with its processors, and served by its
async-inference PolicyServer (in its own process) to its RobotClient over gRPC on localhost,
and run by lerobot-eval."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import brainstem
from conftest import relative_error

from pathlib import Path  # noqa: E402

from lerobot.policies import get_policy_class, make_pre_post_processors  # noqa: E402
from lerobot.utils.import_utils import register_third_party_plugins  # noqa: E402


@pytest.fixture
def exported(golden, tmp_path):
    """The SmolVLA reference checkpoint as a brainstem policy folder, found the way
    lerobot's tools find plugins."""
    register_third_party_plugins()
    from lerobot_policy_brainstem import export

    case = golden("smolvla", "two-cameras")
    return case, export(case.dir, tmp_path / "brainstem-smolvla")


def lerobot_batch(case) -> dict:
    """The observation as lerobot's tools hand it to a policy's preprocessor."""
    observation = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in case.observation().items()}
    observation["task"] = case.task
    return observation


def test_lerobots_factory_runs_the_checkpoint_through_brainstem(exported):
    case, folder = exported
    policy_class = get_policy_class("brainstem")
    policy = policy_class.from_pretrained(folder)
    preprocessor, postprocessor = make_pre_post_processors(policy.config, pretrained_path=str(folder))
    batch = preprocessor(lerobot_batch(case))
    chunk = policy.predict_action_chunk(batch, noise=torch.from_numpy(case.noise[None]))
    actions = postprocessor(chunk)
    assert tuple(actions.shape) == (1, *case.tensors["actions"].shape)
    assert relative_error(actions[0].numpy(), case.tensors["actions"]) < 1e-4
    # select_action pops the same chunk's first n_action_steps, then makes another.
    policy.reset()
    first = policy.select_action(preprocessor(lerobot_batch(case)), noise=torch.from_numpy(case.noise[None]))
    np.testing.assert_array_equal(first[0].numpy(), chunk[0, 0].numpy())


def test_a_lerobot_checkpoint_folder_is_refused_with_the_way_out(golden):
    register_third_party_plugins()
    case = golden("smolvla", "two-cameras")
    with pytest.raises(ValueError, match="export"):
        get_policy_class("brainstem").from_pretrained(case.dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1][-4000:]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the policy server did not listen on {port} in {seconds} s")


def test_lerobots_policy_server_serves_it_to_lerobots_robot_client(exported, tmp_path, monkeypatch):
    # lerobot's async-inference modules open log files under ./logs when they are imported:
    # here, not in the clone.
    monkeypatch.chdir(tmp_path)
    import toy_arm
    from lerobot.async_inference.configs import RobotClientConfig
    from lerobot.async_inference.robot_client import RobotClient

    case, folder = exported
    port = free_port()
    # lerobot's own server, started as docs/python.md says: the plugin's `serve` imports the
    # plugin, then hands its options to lerobot's PolicyServer.
    server = subprocess.Popen(
        [sys.executable, "-m", "lerobot_policy_brainstem", "serve", "--host=127.0.0.1", f"--port={port}", "--fps=30"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        cwd=tmp_path,
    )
    client = None
    try:
        wait_for_port(port, server, 120)
        robot_config = toy_arm.ToyArmConfig(frames=case.frames, state=case.text["state"])
        client = RobotClient(
            RobotClientConfig(
                policy_type="brainstem",
                pretrained_name_or_path=str(folder),
                robot=robot_config,
                actions_per_chunk=case.tensors["actions"].shape[0],
                task=case.task,
                server_address=f"127.0.0.1:{port}",
                fps=30,
            )
        )
        assert client.start()
        receiver = threading.Thread(target=client.receive_actions, daemon=True)
        loop = threading.Thread(target=client.control_loop, args=(case.task,), daemon=True)
        receiver.start()
        loop.start()
        deadline = time.monotonic() + 120
        while len(client.robot.actions) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if client is not None:
            client.stop()
        server.terminate()
        server.wait(timeout=30)
    performed = client.robot.actions
    assert len(performed) >= 3, "the robot received no actions in time"
    # The server's first chunk is drawn from seed 0, as brainstem's own policy draws it.
    expected = brainstem.Policy.load(case.dir, seed=0).predict_action_chunk(case.observation(uint8=True), task=case.task)
    first = np.array([performed[0][joint] for joint in toy_arm.JOINTS], dtype=np.float32)
    assert relative_error(first, expected[0]) < 1e-4


def test_lerobot_eval_runs_it_in_an_env(exported, tmp_path):
    case, folder = exported
    record = tmp_path / "actions.jsonl"
    frames = ", ".join(f"{camera}: {case.dir / 'golden' / f'{camera}.png'}" for camera in case.frames)
    tests = Path(__file__).resolve().parent
    command = [
        str(Path(sys.executable).with_name("lerobot-eval")),
        f"--policy.path={folder}",
        "--env.type=brainstem_toy",
        "--env.discover_packages_path=gym_brainstem_toy",
        f"--env.frames={{{frames}}}",
        f"--env.state={json.dumps(case.text['state'])}",
        f"--env.instruction={case.task}",
        f"--env.record={record}",
        "--eval.n_episodes=2",
        "--eval.batch_size=1",
        f"--output_dir={tmp_path / 'eval'}",
    ]
    env = dict(os.environ, PYTHONPATH=str(tests))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2
    actions = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(actions) == 8  # two episodes of four steps
    # The first action is the first row of brainstem's first chunk, drawn from seed 0.
    expected = brainstem.Policy.load(case.dir, seed=0).predict_action_chunk(case.observation(), task=case.task)
    assert relative_error(np.asarray(actions[0], dtype=np.float32), expected[0]) < 1e-4

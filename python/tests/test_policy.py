"""brainstem.Policy against lerobot 0.6.1's outputs on the same tiny checkpoints, observations
and noise (tools/reference), and against itself across the input forms lerobot users pass."""

import threading

import numpy as np
import pytest

import brainstem
from conftest import FLOW_VARIANTS, relative_error


@pytest.mark.parametrize("family,variant", FLOW_VARIANTS)
def test_f32_chunk_matches_lerobot(golden, family, variant):
    case = golden(family, variant)
    policy = brainstem.Policy.load(case.dir)
    chunk = policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise)
    reference = case.tensors["actions"]
    assert chunk.shape == reference.shape
    assert chunk.dtype == np.float32
    assert relative_error(chunk, reference) < 1e-4


@pytest.mark.parametrize("variant", ["two-cameras", "end"])
def test_pi0_fast_chunk_matches_lerobot(golden, variant):
    case = golden("pi0fast", variant)
    policy = brainstem.Policy.load(case.dir)
    assert policy.type == "pi0_fast"
    chunk = policy.predict_action_chunk(case.observation(), task=case.task)
    assert relative_error(chunk, case.tensors["actions"]) < 1e-4
    with pytest.raises(ValueError, match="pi0-FAST"):
        policy.predict_action_chunk(case.observation(), task=case.task, noise=np.zeros((8, 6)))


@pytest.mark.parametrize("quantize,bound", [("q8_0", 0.05), ("Q4_K", 0.5)])
def test_quantized_chunk_stays_near_lerobot(golden, quantize, bound):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir, quantize=quantize, activations="int8")
    assert policy.quantize == quantize.lower()
    chunk = policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise)
    assert relative_error(chunk, case.tensors["actions"]) < bound


def test_every_input_form_gives_the_same_chunk(golden):
    torch = pytest.importorskip("torch")
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    expected = policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise)
    from_bytes = policy.predict_action_chunk(case.observation(uint8=True), task=case.task, noise=case.noise)
    np.testing.assert_array_equal(from_bytes, expected)
    np.testing.assert_array_equal(
        policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise[None]), expected
    )
    in_dict = dict(case.observation(), task=case.task)
    np.testing.assert_array_equal(policy.predict_action_chunk(in_dict, noise=case.noise), expected)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in case.observation().items()}
    np.testing.assert_array_equal(
        policy.predict_action_chunk(tensors, task=case.task, noise=torch.from_numpy(case.noise)), expected
    )
    # A CUDA-less torch tensor that requires grad is detached, not refused.
    tensors["observation.state"] = tensors["observation.state"].clone().requires_grad_(True)
    np.testing.assert_array_equal(
        policy.predict_action_chunk(tensors, task=case.task, noise=case.noise), expected
    )


def test_a_batch_is_each_item_in_turn(golden):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    single = case.observation()
    other_state = single["observation.state"] * -0.5
    batched = {k: np.stack([v, v]) for k, v in single.items()}
    batched["observation.state"][1] = other_state
    noise = np.stack([case.noise, case.noise[::-1].copy()])
    chunks = policy.predict_action_chunk(batched, task=[case.task, "open the drawer"], noise=noise)
    assert chunks.shape == (2, *case.tensors["actions"].shape)
    np.testing.assert_array_equal(
        chunks[0], policy.predict_action_chunk(single, task=case.task, noise=case.noise)
    )
    second = dict(single, **{"observation.state": other_state})
    np.testing.assert_array_equal(
        chunks[1], policy.predict_action_chunk(second, task="open the drawer", noise=noise[1])
    )
    with pytest.raises(ValueError, match="3 tasks for a batch of 2"):
        policy.predict_action_chunk(batched, task=["a", "b", "c"])


def test_select_action_queues_n_action_steps_as_lerobot_does(golden):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    steps = policy.n_action_steps
    assert 0 < steps <= policy.chunk_steps
    chunk = policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise)
    for step in range(steps):
        action = policy.select_action(case.observation(), task=case.task, noise=case.noise)
        assert action.shape == (policy.action_dim,)
        np.testing.assert_array_equal(action, chunk[step])
    # The queue is empty: the next call makes a new chunk (here from other noise).
    fresh = policy.select_action(case.observation(), task=case.task, noise=case.noise * 0.5)
    assert not np.array_equal(fresh, chunk[steps % len(chunk)])
    policy.reset()
    np.testing.assert_array_equal(policy.select_action(case.observation(), task=case.task, noise=case.noise), chunk[0])
    policy.select_action(case.observation(), task=case.task)
    batched = {k: np.stack([v, v]) for k, v in case.observation().items()}
    with pytest.raises(ValueError, match="reset"):
        policy.select_action(batched, task=case.task)


def test_chunks_without_noise_are_drawn_from_the_seed(golden):
    case = golden("smolvla", "two-cameras")
    first = brainstem.Policy.load(case.dir, seed=7)
    second = brainstem.Policy.load(case.dir, seed=7)
    a = first.predict_action_chunk(case.observation(), task=case.task)
    np.testing.assert_array_equal(a, second.predict_action_chunk(case.observation(), task=case.task))
    assert not np.array_equal(a, first.predict_action_chunk(case.observation(), task=case.task))


def test_threads_share_a_policy(golden):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    expected = policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise)
    results = [None] * 4

    def run(slot):
        results[slot] = policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_select_action_and_reset_from_two_threads_finish(golden):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    stop = threading.Event()

    def keep_resetting():
        while not stop.is_set():
            policy.reset()

    resetter = threading.Thread(target=keep_resetting)
    resetter.start()
    try:
        for _ in range(50):
            assert policy.select_action(case.observation(), task=case.task).shape == (policy.action_dim,)
    finally:
        stop.set()
        resetter.join(timeout=10)
    assert not resetter.is_alive()


def test_the_policy_describes_itself(golden):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    assert policy.type == "smolvla"
    assert policy.cameras == case.text["cameras"]
    assert policy.state_dim == len(case.text["state"])
    assert (policy.chunk_steps, policy.action_dim) == case.tensors["actions"].shape
    assert policy.max_action_dim == case.noise.shape[1]
    assert "smolvla" in repr(policy)


def test_bad_input_is_a_clear_exception(golden, tmp_path):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    observation = case.observation()
    with pytest.raises(ValueError, match="observation.state"):
        policy.predict_action_chunk({k: v for k, v in observation.items() if k != "observation.state"}, task="x")
    with pytest.raises(ValueError, match="no task"):
        policy.predict_action_chunk(observation)
    nan_state = dict(observation, **{"observation.state": np.full(6, np.nan, dtype=np.float32)})
    with pytest.raises(brainstem.BrainstemError, match="(?i)nan|finite"):
        policy.predict_action_chunk(nan_state, task="x")
    short_state = dict(observation, **{"observation.state": np.zeros(4, dtype=np.float32)})
    with pytest.raises(brainstem.BrainstemError, match="6"):
        policy.predict_action_chunk(short_state, task="x")
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        policy.predict_action_chunk(dict(observation, **{"observation.images.top": np.zeros((4, 8, 8))}), task="x")
    with pytest.raises(ValueError, match="(?i)holds nan"):
        bad = np.full((3, 8, 8), np.nan, dtype=np.float32)
        policy.predict_action_chunk(dict(observation, **{"observation.images.top": bad}), task="x")
    with pytest.raises(TypeError, match="numbers"):
        policy.predict_action_chunk(dict(observation, **{"observation.state": np.array(["a"] * 6)}), task="x")
    with pytest.raises(ValueError, match="noise"):
        policy.predict_action_chunk(observation, task="x", noise=np.zeros((3, 3)))
    with pytest.raises(brainstem.BrainstemError, match="(?i)nan|finite"):
        policy.predict_action_chunk(observation, task="x", noise=np.full_like(case.noise, np.nan))
    with pytest.raises(ValueError, match="quantize"):
        brainstem.Policy.load(case.dir, quantize="q3_z")
    with pytest.raises(ValueError, match="activations"):
        brainstem.Policy.load(case.dir, activations="int4")
    with pytest.raises(brainstem.BrainstemError, match="config.json"):
        brainstem.Policy.load(tmp_path)
    (tmp_path / "config.json").write_text('{"type": "act"}')
    with pytest.raises(brainstem.BrainstemError, match="act"):
        brainstem.Policy.load(tmp_path)


def test_any_image_size_is_resized_as_lerobot_does(golden):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    observation = case.observation(uint8=True)
    observation["observation.images.top"] = np.random.default_rng(0).integers(0, 255, (37, 101, 3), dtype=np.uint8)
    chunk = policy.predict_action_chunk(observation, task=case.task, noise=case.noise)
    assert np.isfinite(chunk).all()


def test_the_time_in_the_model_is_reported(golden):
    import time

    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir)
    assert policy.last_inference_ms == 0.0
    started = time.perf_counter()
    policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise)
    wall_ms = (time.perf_counter() - started) * 1e3
    assert 0.0 < policy.last_inference_ms <= wall_ms


def test_the_wgpu_device_gives_lerobots_chunk(golden):
    case = golden("smolvla", "two-cameras")
    policy = brainstem.Policy.load(case.dir, device="wgpu")
    assert policy.device == "wgpu"
    chunk = policy.predict_action_chunk(case.observation(), task=case.task, noise=case.noise)
    assert relative_error(chunk, case.tensors["actions"]) < 1e-4
    with pytest.raises(ValueError, match="cpu, wgpu"):
        brainstem.Policy.load(case.dir, device="tpu")

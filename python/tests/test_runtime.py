"""brainstem.Runtime: the built-in demo robot driven from Python as the C ABI test drives it
from C: frames and joint states in, plans, answers and chunks out as events, and the motion
decoder's commands drained from its ring."""

import time

import numpy as np
import pytest

import brainstem


def frame(i: int, width: int = 96, height: int = 64) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([(xs + ys * width + i) % 256, ys * 4 % 256, np.full_like(xs, 90)], axis=-1).astype(np.uint8)


def test_the_demo_runs_from_python(tmp_path):
    with brainstem.Runtime(cache_dir=tmp_path) as runtime:
        joints = runtime.joint_count
        assert joints > 0 and runtime.camera_count == 1
        state = np.zeros(joints)
        state[3] = np.nan
        with pytest.raises(brainstem.BrainstemError, match="NaN"):
            runtime.push_state(state)
        runtime.set_instruction("pick up the red ball")
        question = runtime.ask("What do you see?")
        kinds = {"Plan": 0, "Answer": 0, "Chunk": 0, "StageFailed": 0}
        answered = None
        for i in range(600):
            runtime.push_frame(frame(i))
            while (event := runtime.next_event()) is not None:
                (kind, body), = event.items()
                kinds[kind] = kinds.get(kind, 0) + 1
                if kind == "Answer":
                    answered = body["id"]
            if kinds["Plan"] and kinds["Answer"] and kinds["Chunk"] >= 5:
                break
            time.sleep(0.02)
        assert kinds["StageFailed"] == 0 and kinds["Plan"] > 0 and kinds["Chunk"] >= 5
        assert answered == question
        assert runtime.subtask
        commands = runtime.commands()
        ticks = len(commands["tick"])
        assert ticks > 100
        assert commands["positions"].shape == (ticks, joints)
        assert np.isfinite(commands["positions"]).all() and np.isfinite(commands["velocities"]).all()
        assert (np.diff(commands["tick"].astype(np.int64)) == 1).all()
        assert set(np.unique(commands["mode"])) <= {0, 1, 2, 3}
        assert commands["dropped"] == 0
        # Drained: the next read starts after the last one.
        later = runtime.commands()
        if len(later["tick"]):
            assert later["tick"][0] == commands["tick"][-1] + 1
        assert "motion" in runtime.telemetry() or runtime.telemetry()
        report = runtime.stop()
        assert isinstance(report, dict) and report
    with pytest.raises(brainstem.BrainstemError, match="stopped"):
        runtime.push_frame(frame(0))
    assert runtime.stop() is None


def test_frames_and_configurations_are_checked(tmp_path):
    with pytest.raises(brainstem.BrainstemError, match="line"):
        brainstem.Runtime(toml="[policy\n")
    with pytest.raises(brainstem.BrainstemError):
        brainstem.Runtime(config=tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="not both"):
        brainstem.Runtime(config=tmp_path / "a.toml", toml="")
    with brainstem.Runtime(cache_dir=tmp_path) as runtime:
        with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
            runtime.push_frame(np.zeros((8, 8), dtype=np.uint8))
        with pytest.raises(TypeError, match="uint8"):
            runtime.push_frame(np.zeros((8, 8, 3), dtype=np.float32))
        with pytest.raises(brainstem.BrainstemError, match="per camera"):
            runtime.push_frame([frame(0), frame(1)])
        with pytest.raises(ValueError, match="timeout"):
            runtime.next_event(timeout_s=-1)


def test_a_thread_waiting_for_events_does_not_hold_up_frames(tmp_path):
    import threading

    with brainstem.Runtime(cache_dir=tmp_path) as runtime:
        waiter = threading.Thread(target=lambda: runtime.next_event(timeout_s=3.0))
        waiter.start()
        time.sleep(0.1)
        started = time.monotonic()
        for i in range(5):
            runtime.push_frame(frame(i))
        assert time.monotonic() - started < 1.0
        waiter.join()

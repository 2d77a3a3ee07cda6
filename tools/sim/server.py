#!/usr/bin/env python3
"""The reaching task (tools/sim/reach.py) served to `brainstem eval sim` over standard input
and output: one JSON object a line each way, a request then its reply.

Requests and replies:
  {"op": "describe"}              -> the task: joints with their limits, control and action
                                     rates, cameras with their size, the instruction, the
                                     success radius
  {"op": "reset", "seed": S}      -> {"joints": [...], "velocities": [...], "distance": d}
  {"op": "step", "targets": [...], "seconds": t}
                                  -> {"time": t, "joints": [...], "velocities": [...],
                                      "distance": d}
  {"op": "render"}                -> {"views": [{"camera": "top", "height": H, "width": W,
                                      "rgb": base64 of H*W*3 bytes, row by row}]}
  {"op": "close"}                 -> {} and the server exits
A request it cannot serve gets {"error": "..."}; the server goes on.
"""

import base64
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reach  # noqa: E402

# The motion decoder's rate: its tracker's gains follow the control period, and at 50 Hz it lags a
# policy's held targets enough to cost a tenth of the successes (docs/simulation.md).
CONTROL_HZ = 200.0


def describe():
    return {
        "task": "reach",
        "instruction": reach.INSTRUCTION,
        "control_rate_hz": CONTROL_HZ,
        "action_rate_hz": reach.FPS,
        "success_radius": reach.SUCCESS_RADIUS,
        "cameras": [{"name": "top", "height": reach.IMAGE_SIZE, "width": reach.IMAGE_SIZE}],
        "joints": [
            {"name": name, "min_position": -reach.JOINT_RANGE, "max_position": reach.JOINT_RANGE,
             "max_velocity": 6.0, "max_acceleration": 120.0, "max_jerk": 6000.0}
            for name in reach.JOINTS
        ],
    }


def motion(task):
    return {"time": task.time(), "joints": task.joints().tolist(), "velocities": task.velocities().tolist(),
            "distance": task.distance()}


def serve(task, request):
    op = request.get("op")
    if op == "describe":
        return describe()
    if op == "reset":
        task.reset(int(request["seed"]))
        return motion(task)
    if op == "step":
        targets = [float(t) for t in request["targets"]]
        if len(targets) != len(reach.JOINTS):
            return {"error": f"step needs {len(reach.JOINTS)} targets, found {len(targets)}"}
        task.step(targets, float(request["seconds"]))
        return motion(task)
    if op == "render":
        image = task.image()
        return {"views": [{"camera": "top", "height": image.shape[0], "width": image.shape[1],
                           "rgb": base64.b64encode(image.tobytes()).decode("ascii")}]}
    return {"error": f"unknown op {op!r}"}


def main():
    task = reach.ReachTask()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request.get("op") == "close":
                print("{}", flush=True)
                return
            reply = serve(task, request)
        except (ValueError, KeyError, TypeError) as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()

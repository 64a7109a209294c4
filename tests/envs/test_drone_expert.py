"""The privileged drone expert: plans around the trees and reaches the target on held-out forests."""

from __future__ import annotations

import numpy as np
import pytest

from lnn_control.envs.drone_forest.backend import DroneState, yaw_quaternion
from lnn_control.envs.drone_forest.expert import DroneExpert, ExpertConfig
from lnn_control.envs.drone_forest.forest import generate_forest


def test_expert_plan_is_collision_free_and_actions_are_bounded() -> None:
    forest = generate_forest(1001)
    expert = DroneExpert(forest)
    expert.reset(forest.start_position)
    path = expert.path
    assert np.allclose(path[-1], forest.target_position[:2])
    for a, b in zip(path[:-1], path[1:]):
        assert forest.segment_clearance(a, b) >= forest.config.path_inflation
    state = DroneState(0.0, forest.start_position, yaw_quaternion(forest.start_yaw + 1.0), np.zeros(3), np.zeros(3))
    action = expert.act(state)
    assert action.dtype == np.float32 and action.shape == (4,)
    assert np.all(action >= [-2, -1, -1, -1]) and np.all(action <= [2, 1, 1, 1])
    assert action[3] < 0  # turns back (clockwise) towards the path
    # a drone far off the path (≥ 2.5 m, in free space) makes the expert replan from where it is
    candidates = [forest.start_position + np.r_[dx, dy, 0.0] for dx in (-4.0, 0.0, 4.0) for dy in (-4.0, 0.0, 4.0)]
    off_path = [c for c in candidates if forest.clearance(c) > 1.0 and
                min(np.linalg.norm(c[:2] - p) for p in np.linspace(path[0], path[1], 50)) > 2.5]
    assert off_path, "no free off-path point near the start"
    off = DroneState(0.0, off_path[0], yaw_quaternion(0.0), np.zeros(3), np.zeros(3))
    expert.act(off)
    assert np.allclose(expert.path[0], off.position[:2])
    with pytest.raises(ValueError, match="finite"):
        expert.act(DroneState(0.0, [np.nan, 0, 1], [1, 0, 0, 0], np.zeros(3), np.zeros(3)))
    with pytest.raises(ValueError, match="cruise_speed"):
        ExpertConfig(cruise_speed=3.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1000, 1007])
def test_expert_reaches_the_target_on_held_out_forests(seed: int) -> None:
    from lnn_control.envs.drone_forest.env import DroneForestEnv

    env = DroneForestEnv(domain_randomization=True)
    try:
        env.reset(seed=seed)
        min_clearance = np.inf
        for _ in range(int(60 / env.control_dt)):
            _, _, terminated, truncated, info = env.step(env.expert_action())
            min_clearance = min(min_clearance, info["clearance"])
            if terminated or truncated:
                break
        assert info["success"] and info["end_reason"] == "success"
        assert info["distance_to_target"] <= 1.0 and not info["collision"]
        assert min_clearance > 0.4  # keeps well clear of the trunks (collision radius 0.25 m)
        assert info["sim_time"] < 30.0
    finally:
        env.close()


def test_facing_the_target_or_the_path() -> None:
    """face='target' turns the camera to the target even when the path heads elsewhere; the
    horizontal command still points along the path (rotated into the heading frame)."""
    forest = generate_forest(1003)
    start = forest.start_position
    bearing = float(np.arctan2(*(forest.target_position[1::-1] - start[1::-1])))
    for face in ("target", "path"):
        expert = DroneExpert(forest, ExpertConfig(face=face))
        expert.reset(start)
        yaw = bearing + 0.5  # looking 0.5 rad left of the target
        vx, vy, _, yaw_rate = expert.act(DroneState(0.0, start, yaw_quaternion(yaw), np.zeros(3), np.zeros(3)))
        aim = expert.path[1] - start[:2]
        path_heading = float(np.arctan2(aim[1], aim[0]))
        flown = yaw + float(np.arctan2(vy, vx))  # world direction of the commanded velocity
        assert abs(np.angle(np.exp(1j * (flown - path_heading)))) < 0.35
        want = bearing if face == "target" else path_heading
        assert np.sign(yaw_rate) == np.sign(np.angle(np.exp(1j * (want - yaw))))
    with pytest.raises(ValueError, match="face"):
        ExpertConfig(face="sky")

"""The pure-pursuit expert: correct steering sign from the typed state, and it drives held-out roads."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import lnn_control.envs  # noqa: F401
import numpy as np
import pytest
from lnn_control.envs.lane_keeping.backend import VehicleState
from lnn_control.envs.lane_keeping.car import CarParams
from lnn_control.envs.lane_keeping.expert import PurePursuitConfig, expert_action, expert_steering
from lnn_control.envs.lane_keeping.road import RoadConfig, generate_road, held_out_seeds


def _state_at(road, s, offset, heading_offset=0.0, speed=1.5):
    xy = road.point_at(s, road.driving_lane_offset + offset)
    return VehicleState(
        time=0.0, x=float(xy[0]), y=float(xy[1]), yaw=float(road.heading_at(s)) + heading_offset,
        roll=0.0, pitch=0.0, speed=speed, lateral_speed=0.0, yaw_rate=0.0, steering_angle=0.0,
        wheel_contacts=(True, True, True, True),
    )


def test_steers_back_towards_the_lane_centre():
    road = generate_road(1000, RoadConfig(length=15.0))
    s = 1.0  # on the straight lead-in
    assert expert_action(_state_at(road, s, 0.0), road) == pytest.approx(0.0, abs=0.02)
    assert expert_action(_state_at(road, s, +0.1), road) < -0.2  # left of centre: steer right
    assert expert_action(_state_at(road, s, -0.1), road) > 0.2
    assert expert_action(_state_at(road, s, 0.0, heading_offset=0.3), road) < -0.3
    assert -1.0 <= expert_action(_state_at(road, s, 0.6), road) <= 1.0


def test_follows_curvature_on_an_arc():
    car = CarParams()
    road = generate_road(1000)
    # the middle of the longest constant-curvature arc
    constant = np.concatenate([[False], np.abs(np.diff(road.curvature)) < 1e-12]) & (np.abs(road.curvature) > 0)
    runs, start = [], None
    for i, flag in enumerate([*constant, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((i - start, start, i - 1))
            start = None
    _, first, last = max(runs)
    assert road.s[last] - road.s[first] > 1.5
    s = 0.5 * (road.s[first] + road.s[last])
    k = float(road.curvature_at(s))
    # lane centre curvature (right lane is offset lane_width/2 right of the centre line)
    lane_k = k / (1.0 + k * road.lane_width / 2)
    # steady turn of a bicycle: rear axle on the lane centre, heading tangent there
    rear = _state_at(road, s, 0.0)
    forward = np.array([np.cos(rear.yaw), np.sin(rear.yaw)]) * car.wheelbase / 2
    state = rear.__class__(**{**rear.__dict__, "x": rear.x + forward[0], "y": rear.y + forward[1]})
    delta = expert_steering(state, road, car)
    assert delta == pytest.approx(np.arctan(car.wheelbase * lane_k), abs=0.02)


def test_rejects_non_finite_state_and_bad_config():
    road = generate_road(1000, RoadConfig(length=15.0))
    bad = _state_at(road, 1.0, 0.0).__class__(**{**_state_at(road, 1.0, 0.0).__dict__, "x": float("nan")})
    with pytest.raises(ValueError, match="non-finite"):
        expert_action(bad, road)
    with pytest.raises(ValueError, match="min_lookahead"):
        PurePursuitConfig(min_lookahead=2.0, max_lookahead=1.0)


def _backend_available(name: str) -> bool:
    return (
        importlib.util.find_spec(name) is not None
        and importlib.util.find_spec(f"lnn_control.envs.lane_keeping.{name}_backend") is not None
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(name, marks=pytest.mark.skipif(not _backend_available(name), reason=f"{name} backend not present"))
        for name in ("pybullet", "mujoco")
    ],
)
@pytest.mark.parametrize("seed", held_out_seeds(3, start=1010))
def test_drives_held_out_roads_without_departure(seed, backend):
    env = gym.make("lnn_control/LaneKeeping-v0", backend=backend, road_length=15.0, target_speed=2.0)
    try:
        _, info = env.reset(seed=seed)
        offsets = []
        while True:
            _, _, terminated, truncated, info = env.step(env.unwrapped.expert_action())
            offsets.append(abs(info["lateral_offset"]))
            if terminated or truncated:
                break
        assert truncated and not terminated
        assert info["success"] and info["end_reason"] == "end_of_road"
        assert info["progress"] == pytest.approx(15.0 - 1.0 - 1.0, abs=0.1)
        assert max(offsets) < 0.08 and float(np.mean(offsets)) < 0.03
    finally:
        env.close()

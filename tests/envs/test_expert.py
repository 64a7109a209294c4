"""The pure-pursuit expert: correct steering sign from the typed state, and it drives held-out roads."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

import lnn_control.envs  # noqa: F401
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


def _constant_curvature_arcs(road):
    """(first, last) sample indices of every run of exactly constant, non-zero curvature (the
    generator's arc plateaus between clothoid ramps)."""
    constant = np.concatenate([[False], np.diff(road.curvature) == 0.0]) & (road.curvature != 0.0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], constant.astype(int), [0]])))
    # a run of flags [a, b) also covers sample a - 1, whose curvature it repeats
    return [(a - 1, b - 1) for a, b in zip(edges[::2], edges[1::2])]


@pytest.mark.parametrize("seed", [1000, 1001, 1002, 1003])
def test_follows_curvature_on_an_arc(seed):
    car, config = CarParams(), PurePursuitConfig()
    road = generate_road(seed)
    speed = 1.5
    lookahead = min(config.max_lookahead, config.min_lookahead + config.lookahead_time * speed)
    # the sharpest arc long enough that the car and its lookahead point both lie on it
    arcs = [(a, b) for a, b in _constant_curvature_arcs(road) if road.s[b] - road.s[a] > 2 * (lookahead + 0.2)]
    assert arcs, "road generation no longer produces arcs long enough for this test"
    first, last = max(arcs, key=lambda run: abs(road.curvature[run[0]]))
    s = 0.5 * (road.s[first] + road.s[last]) - 0.5 * lookahead  # rear axle here, lookahead point ahead
    k = float(road.curvature_at(s))
    assert abs(k) >= 0.3 * road.config.max_curvature  # a real bend, not a near-straight
    # lane centre curvature (right lane is offset lane_width/2 right of the centre line)
    lane_k = k / (1.0 + k * road.lane_width / 2)
    # steady turn of a bicycle: rear axle on the lane centre, heading tangent there
    rear = _state_at(road, s, 0.0, speed=speed)
    forward = np.array([np.cos(rear.yaw), np.sin(rear.yaw)]) * car.wheelbase / 2
    state = rear.__class__(**{**rear.__dict__, "x": rear.x + forward[0], "y": rear.y + forward[1]})
    delta = expert_steering(state, road, car, config)
    # pure pursuit towards a point on the same circle commands exactly that circle's steering angle
    assert delta == pytest.approx(np.arctan(car.wheelbase * lane_k), abs=2e-3)


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

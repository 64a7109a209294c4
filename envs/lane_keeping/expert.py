"""The privileged lane-keeping expert: pure pursuit on the ground-truth driving-lane centre.

Reads only :class:`~.backend.VehicleState` and the :class:`~.road.Road`, so it drives any backend.
Pure pursuit from the rear axle: pick the lane-centre point ``lookahead`` metres ahead and steer
along the circular arc through it, ``δ = atan(2 L sin α / d)``, where α is the bearing of that point
from the car's heading and d its distance. Lookahead grows with speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_control.envs.lane_keeping.backend import VehicleState
from lnn_control.envs.lane_keeping.car import CarParams
from lnn_control.envs.lane_keeping.road import Road


@dataclass(frozen=True)
class PurePursuitConfig:
    """lookahead = clip(min_lookahead + lookahead_time · speed, ≤ max_lookahead) in metres (speed in m/s)."""

    min_lookahead: float = 0.35
    lookahead_time: float = 0.25
    max_lookahead: float = 1.5

    def __post_init__(self) -> None:
        if not 0 < self.min_lookahead <= self.max_lookahead:
            raise ValueError(
                f"PurePursuitConfig needs 0 < min_lookahead ({self.min_lookahead}) ≤ max_lookahead ({self.max_lookahead})"
            )
        if self.lookahead_time < 0:
            raise ValueError(f"PurePursuitConfig.lookahead_time must be ≥ 0 s, got {self.lookahead_time}")


def expert_steering(
    state: VehicleState,
    road: Road,
    car: CarParams | None = None,
    config: PurePursuitConfig | None = None,
    s_hint: float | None = None,
) -> float:
    """Front-wheel angle (rad, + = left, clipped to ±max_steering) that pure pursuit commands."""
    car = CarParams() if car is None else car
    config = PurePursuitConfig() if config is None else config
    if not state.finite:
        raise ValueError("the expert cannot act on a non-finite vehicle state (the simulation diverged)")
    forward = np.array([math.cos(state.yaw), math.sin(state.yaw)])
    rear = state.position - 0.5 * car.wheelbase * forward
    lookahead = min(config.max_lookahead, config.min_lookahead + config.lookahead_time * max(state.speed, 0.0))
    s = road.project(rear, s_hint=s_hint).s
    target = road.lane_center(min(s + lookahead, road.length))
    delta = target - rear
    distance = float(np.hypot(*delta))
    if distance < 1e-6:
        return 0.0
    alpha = math.atan2(delta[1], delta[0]) - state.yaw
    steering = math.atan2(2.0 * car.wheelbase * math.sin(alpha), distance)
    return float(np.clip(steering, -car.max_steering, car.max_steering))


def expert_action(
    state: VehicleState,
    road: Road,
    car: CarParams | None = None,
    config: PurePursuitConfig | None = None,
    s_hint: float | None = None,
) -> float:
    """The expert's normalised steering action in [-1, 1] (+ = left)."""
    car = CarParams() if car is None else car
    return car.normalized_from_steering(expert_steering(state, road, car, config, s_hint))

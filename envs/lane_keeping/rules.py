"""Lane-keeping task logic shared by all backends: lane frame, rewards by name, termination, success.

Reads only :class:`~.backend.VehicleState`, so it is the same for PyBullet, MuJoCo and a real car.

Definitions (m, rad, s):

- ``lateral_offset``: signed distance of the car's reference point from the centre of the driving
  (right-hand) lane, + = left.
- ``heading_error``: car yaw minus road heading at the projected point, wrapped to (-π, π], + = car
  points left of the road direction.
- ``progress``: arclength driven along the road since the start of the episode.
- **Lane departure**: a wheel centre crosses a boundary line of the driving lane, i.e.
  ``|lateral_offset| > lane_width/2 − track/2`` (0.15 m with the defaults) — episode terminates.
- Other terminations: facing the wrong way (``|heading_error| > π/2``), the car tipped over
  (roll or pitch > 0.8 rad) or the simulation produced NaN.
- Truncation: the end of the road is reached (``progress`` ≥ road end − ``end_margin`` − start) —
  this is a **success** if there was no departure — or the time limit expired (not a success).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from lnn_control.envs.common import StepOutcome, wrap_angle
from lnn_control.envs.lane_keeping.backend import Pose2D, VehicleState
from lnn_control.envs.lane_keeping.car import CarParams
from lnn_control.envs.lane_keeping.road import Road


class EndReason(str, Enum):
    """Why an episode ended ("" while it runs)."""

    RUNNING = ""
    LANE_DEPARTURE = "lane_departure"
    WRONG_WAY = "wrong_way"
    UPSET = "upset"
    SIMULATION_UNSTABLE = "simulation_unstable"
    END_OF_ROAD = "end_of_road"
    TIME_LIMIT = "time_limit"


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the named reward terms (reward = Σ weight · term).

    progress: per metre driven along the road this step.
    centering: term = −(lateral_offset / (lane_width/2))², per step.
    heading: term = −|heading_error| (rad), per step.
    departure: term = −1 on the step the car leaves the lane (or ends the episode by failure).
    """

    progress: float = 1.0
    centering: float = 0.1
    heading: float = 0.05
    departure: float = 10.0

    def __post_init__(self) -> None:
        for name in ("progress", "centering", "heading", "departure"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"RewardWeights.{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class LaneRulesConfig:
    """Task parameters.

    start_s: arclength (m) of the start pose on the road (inside the straight lead-in).
    end_margin: the episode succeeds this far (m) before the road's end.
    departure_offset: |lateral_offset| (m) counted as a lane departure; None = lane_width/2 − track/2.
    max_heading_error: |heading_error| (rad) counted as driving the wrong way.
    max_tilt: roll or pitch (rad) counted as tipping over.
    time_limit: seconds before truncation; None = 2 × the road distance at the target speed + 5 s.
    """

    start_s: float = 1.0
    end_margin: float = 1.0
    departure_offset: float | None = None
    max_heading_error: float = math.pi / 2
    max_tilt: float = 0.8
    time_limit: float | None = None
    rewards: RewardWeights = field(default_factory=RewardWeights)

    def __post_init__(self) -> None:
        if not (self.start_s >= 0 and self.end_margin >= 0):  # also rejects NaN
            raise ValueError(f"LaneRulesConfig.start_s ({self.start_s}) and end_margin ({self.end_margin}) must be ≥ 0")
        if self.departure_offset is not None and not self.departure_offset > 0:
            raise ValueError(f"LaneRulesConfig.departure_offset must be > 0 or None, got {self.departure_offset}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"LaneRulesConfig.time_limit must be > 0 s or None, got {self.time_limit}")
        if not 0 < self.max_heading_error <= math.pi:
            raise ValueError(f"LaneRulesConfig.max_heading_error must be in (0, π] rad, got {self.max_heading_error}")
        if not 0 < self.max_tilt < math.pi:
            raise ValueError(f"LaneRulesConfig.max_tilt must be in (0, π) rad, got {self.max_tilt}")


class LaneRules:
    """Tracks one episode on one road: call :meth:`start_pose`, :meth:`reset`, then :meth:`step`."""

    def __init__(self, road: Road, car: CarParams, config: LaneRulesConfig, target_speed: float) -> None:
        if not config.start_s + config.end_margin + 1.0 <= road.length:
            raise ValueError(
                f"road of {road.length:.1f} m is too short for start_s={config.start_s} and "
                f"end_margin={config.end_margin}; use a road ≥ {config.start_s + config.end_margin + 1.0} m"
            )
        if not target_speed > 0:
            raise ValueError(f"target_speed must be > 0 m/s, got {target_speed}")
        self.road, self.car, self.config = road, car, config
        self.departure_offset = (
            config.departure_offset
            if config.departure_offset is not None
            else 0.5 * road.lane_width - 0.5 * car.track
        )
        self.end_s = road.length - config.end_margin
        distance = self.end_s - config.start_s
        self.time_limit = config.time_limit if config.time_limit is not None else 2.0 * distance / target_speed + 5.0
        self._s = config.start_s
        self._last_info: dict[str, Any] = {}

    def start_pose(self, lateral_offset: float = 0.0, heading_offset: float = 0.0) -> Pose2D:
        """Pose at ``start_s`` shifted ``lateral_offset`` m left of the lane centre, yawed by ``heading_offset``."""
        s = self.config.start_s
        xy = self.road.point_at(s, self.road.driving_lane_offset + lateral_offset)
        return Pose2D(float(xy[0]), float(xy[1]), wrap_angle(float(self.road.heading_at(s)) + heading_offset))

    def reset(self, state: VehicleState) -> dict[str, Any]:
        self._s = self.config.start_s
        info, _ = self._measure(state)
        info.update(reward_terms={"progress": 0.0, "centering": 0.0, "heading": 0.0, "departure": 0.0},
                    success=False, end_reason=EndReason.RUNNING.value)
        self._last_info = info
        return dict(info)

    def _measure(self, state: VehicleState) -> tuple[dict[str, Any], float]:
        previous = self._s
        projection = self.road.project(state.position, s_hint=previous, window=1.0)
        self._s = projection.s
        info = {
            "lateral_offset": float(projection.lateral_offset),
            "heading_error": wrap_angle(state.yaw - projection.heading),
            "progress": float(projection.s - self.config.start_s),
            "s": float(projection.s),
            "speed": float(state.speed),
            "steering_angle": float(state.steering_angle),
            "sim_time": float(state.time),
            "lane_departure": bool(abs(projection.lateral_offset) > self.departure_offset),
        }
        return info, projection.s - previous

    def step(self, state: VehicleState) -> StepOutcome:
        """Evaluate the state after one env step."""
        weights = self.config.rewards
        if not state.finite:
            info = dict(self._last_info)
            info.update(success=False, end_reason=EndReason.SIMULATION_UNSTABLE.value,
                        reward_terms={"progress": 0.0, "centering": 0.0, "heading": 0.0, "departure": -1.0})
            return StepOutcome(-weights.departure, True, False, info)
        info, ds = self._measure(state)
        reason = EndReason.RUNNING
        if info["lane_departure"]:
            reason = EndReason.LANE_DEPARTURE
        elif abs(info["heading_error"]) > self.config.max_heading_error:
            reason = EndReason.WRONG_WAY
        elif max(abs(state.roll), abs(state.pitch)) > self.config.max_tilt:
            reason = EndReason.UPSET
        elif info["s"] >= self.end_s:
            reason = EndReason.END_OF_ROAD
        elif state.time >= self.time_limit:
            reason = EndReason.TIME_LIMIT
        failed = reason in (EndReason.LANE_DEPARTURE, EndReason.WRONG_WAY, EndReason.UPSET)
        terms = {
            "progress": float(ds),
            "centering": -((info["lateral_offset"] / (0.5 * self.road.lane_width)) ** 2),
            "heading": -abs(info["heading_error"]),
            "departure": -1.0 if failed else 0.0,
        }
        reward = sum(getattr(weights, name) * value for name, value in terms.items())
        info.update(reward_terms=terms, success=reason is EndReason.END_OF_ROAD, end_reason=reason.value)
        self._last_info = info
        terminated = failed
        truncated = reason in (EndReason.END_OF_ROAD, EndReason.TIME_LIMIT)
        return StepOutcome(float(reward), terminated, truncated, info)

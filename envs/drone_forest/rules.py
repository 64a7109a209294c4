"""Drone-forest task logic shared by all backends: measurements, rewards by name, termination.

Reads only :class:`~.backend.DroneState` (plus the backend's contact flag) and the
:class:`~.forest.Forest`, so it is the same for PyBullet, MuJoCo and a real vehicle.

Definitions (m, rad, s):

- ``distance_to_target``: 3-D distance from the centre of mass to the target point.
- ``bearing_to_target``: horizontal direction of the target relative to the heading, wrapped to
  (−π, π], + = target to the left.
- ``clearance``: horizontal distance from the centre of mass to the nearest trunk surface.
- ``collision``: the airframe sphere (``QuadParams.collision_radius``) touches a trunk
  (``clearance < collision_radius``) or the ground (``z < collision_radius``), or the physics
  backend reported a contact.
- **Success** (terminates): ``distance_to_target ≤ success_radius`` (1 m) without a collision.
- **Failure** (terminates): collision, leaving the flight volume (``|x|, |y| > area/2`` or above the
  ceiling), tilting past ``max_tilt`` (upset) or NaN physics (``end_reason="diverged"``).
- **Truncation**: the time limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from lnn_control.envs.common import StepOutcome, wrap_angle
from lnn_control.envs.drone_forest.backend import DroneState
from lnn_control.envs.drone_forest.forest import Forest
from lnn_control.envs.drone_forest.quad import QuadParams


class EndReason(str, Enum):
    """Why an episode ended ("" while it runs)."""

    RUNNING = ""
    SUCCESS = "success"
    COLLISION = "collision"
    OUT_OF_BOUNDS = "out_of_bounds"
    UPSET = "upset"
    DIVERGED = "diverged"
    TIME_LIMIT = "time_limit"


FAILURES = (EndReason.COLLISION, EndReason.OUT_OF_BOUNDS, EndReason.UPSET, EndReason.DIVERGED)

REWARD_TERMS: tuple[str, ...] = ("progress", "proximity", "success", "failure")


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the named reward terms (reward = Σ weight · term).

    progress: metres the distance to the target shrank this step.
    proximity: term = −max(0, 1 − clearance / proximity_distance) per step (close to trunks).
    success: term = +1 on the step the target is reached.
    failure: term = −1 on the step the episode fails.
    """

    progress: float = 1.0
    proximity: float = 0.1
    success: float = 10.0
    failure: float = 10.0


@dataclass(frozen=True)
class DroneRulesConfig:
    """Task parameters: success_radius (m); max_tilt (rad); time_limit (s; None = 10 s + 3 × the
    start-to-target distance / 1 m/s); proximity_distance (m) of the proximity penalty."""

    success_radius: float = 1.0
    max_tilt: float = 1.2
    time_limit: float | None = None
    proximity_distance: float = 1.0
    rewards: RewardWeights = field(default_factory=RewardWeights)

    def __post_init__(self) -> None:
        for name in ("success_radius", "max_tilt", "proximity_distance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"DroneRulesConfig.{name} must be a finite number > 0, got {value!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"DroneRulesConfig.time_limit must be > 0 s or None, got {self.time_limit}")


class DroneRules:
    """Tracks one episode in one forest: :meth:`reset` with the start state, then :meth:`step`."""

    def __init__(self, forest: Forest, quad: QuadParams, config: DroneRulesConfig) -> None:
        self.forest, self.quad, self.config = forest, quad, config
        distance = float(np.linalg.norm(forest.target_position - forest.start_position))
        self.time_limit = config.time_limit if config.time_limit is not None else 10.0 + 3.0 * distance
        self._distance = distance
        self._last_info: dict[str, Any] = {}

    def measure(self, state: DroneState) -> dict[str, Any]:
        """Per-step measurements by name (see the module docstring)."""
        position = state.position
        delta = self.forest.target_position - position
        clearance = float(self.forest.clearance(position))
        radius = self.quad.collision_radius
        return {
            "distance_to_target": float(np.linalg.norm(delta)),
            "bearing_to_target": wrap_angle(math.atan2(delta[1], delta[0]) - state.yaw),
            "clearance": clearance,
            "altitude": float(position[2]),
            "speed": state.speed,
            "sim_time": float(state.time),
            "x": float(position[0]),
            "y": float(position[1]),
            "z": float(position[2]),
            "collision": bool(clearance < radius or position[2] < radius),
        }

    def reset(self, state: DroneState) -> dict[str, Any]:
        info = self.measure(state)
        self._distance = info["distance_to_target"]
        info.update(reward_terms=dict.fromkeys(REWARD_TERMS, 0.0), success=False, end_reason=EndReason.RUNNING.value)
        self._last_info = info
        return dict(info)

    def step(self, state: DroneState, contact: bool = False) -> StepOutcome:
        """Evaluate the state after one env step; ``contact``: the backend saw a physical contact."""
        weights = self.config.rewards
        if not state.finite or not np.all(np.abs(state.position) < 1e4):
            info = dict(self._last_info)
            info.update(success=False, end_reason=EndReason.DIVERGED.value,
                        reward_terms={**dict.fromkeys(REWARD_TERMS, 0.0), "failure": -1.0})
            self._last_info = info
            return StepOutcome(-weights.failure, True, False, info)
        info = self.measure(state)
        info["collision"] = bool(info["collision"] or contact)
        reason = EndReason.RUNNING
        if info["collision"]:
            reason = EndReason.COLLISION
        elif not self.forest.in_flight_volume(state.position):
            reason = EndReason.OUT_OF_BOUNDS
        elif state.tilt > self.config.max_tilt:
            reason = EndReason.UPSET
        elif info["distance_to_target"] <= self.config.success_radius:
            reason = EndReason.SUCCESS
        elif state.time >= self.time_limit:
            reason = EndReason.TIME_LIMIT
        failed = reason in FAILURES
        terms = {
            "progress": self._distance - info["distance_to_target"],
            "proximity": -max(0.0, 1.0 - info["clearance"] / self.config.proximity_distance),
            "success": 1.0 if reason is EndReason.SUCCESS else 0.0,
            "failure": -1.0 if failed else 0.0,
        }
        self._distance = info["distance_to_target"]
        reward = sum(getattr(weights, name) * value for name, value in terms.items())
        info.update(reward_terms=terms, success=reason is EndReason.SUCCESS, end_reason=reason.value)
        self._last_info = info
        terminated = failed or reason is EndReason.SUCCESS
        return StepOutcome(float(reward), terminated, reason is EndReason.TIME_LIMIT, info)

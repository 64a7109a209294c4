"""The privileged drone-forest expert: grid planner over the known trunks + a path follower.

Knows every tree and the target. At :meth:`DroneExpert.reset` it plans the shortest 8-connected grid
path to the target around trunks inflated by ``planning_inflation`` (falling back to the forest's
smaller ``path_inflation`` when the wide corridor does not exist), shortcut-smoothed by line of
sight (:func:`~.forest.plan_path`). Each step it follows that path:

- lookahead point ``lookahead`` m further along the path than the closest path point;
- horizontal velocity towards it at ``cruise_speed`` (slower near the target and while the heading
  is far off), expressed in the heading frame → (vx, vy);
- yaw rate ``yaw_gain × heading error`` towards the target (``face="target"``, default) or the
  flight direction (``face="path"``); vz holds the target's altitude. Facing the target keeps it in
  the camera's view, so what the expert does can be read off the image (yaw: where the red target
  sits in the frame; a sidestep: which side of the line to it the next trunk stands); facing
  the path made the yaw depend on the global plan, and a camera policy cloned from it learned
  only the mean command (0 % success on held-out forests);
- if the drone strays more than ``replan_distance`` from the path (a learner flying under DAgger),
  it replans from where it is.

Output: the 4-D action (vx, vy, vz m/s; yaw_rate rad/s) within the action bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_control.envs.drone_forest.backend import DroneState, wrap_angle
from lnn_control.envs.drone_forest.controller import ACTION_HIGH, ACTION_LOW
from lnn_control.envs.drone_forest.forest import Forest, plan_path


@dataclass(frozen=True)
class ExpertConfig:
    """cruise_speed (m/s); lookahead (m); planning_inflation (m added to trunk radii when planning);
    yaw_gain (1/s); altitude_gain (1/s); approach_gain (1/s: speed ≤ gain × distance to target);
    replan_distance (m); face: where the camera points, ``"target"`` or ``"path"``."""

    cruise_speed: float = 1.6
    lookahead: float = 1.5
    planning_inflation: float = 0.8
    yaw_gain: float = 1.5
    altitude_gain: float = 1.0
    approach_gain: float = 0.8
    replan_distance: float = 1.5
    face: str = "target"

    def __post_init__(self) -> None:
        if self.face not in ("target", "path"):
            raise ValueError(f"ExpertConfig.face must be 'target' or 'path', got {self.face!r}")
        for name, value in vars(self).items():
            if name == "face":
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ExpertConfig.{name} must be a finite number > 0, got {value!r}")
        if self.cruise_speed > ACTION_HIGH[0]:
            raise ValueError(f"ExpertConfig.cruise_speed must be ≤ {ACTION_HIGH[0]} m/s, got {self.cruise_speed}")


class DroneExpert:
    """Plans on :meth:`reset` (forest + start position) and returns actions from :meth:`act`."""

    def __init__(self, forest: Forest, config: ExpertConfig | None = None) -> None:
        self.forest = forest
        self.config = ExpertConfig() if config is None else config
        self.path: np.ndarray = np.zeros((0, 2))
        self._index = 0

    def reset(self, position: np.ndarray) -> None:
        """Plan from ``position`` [3] (m) to the forest's target."""
        self._plan(np.asarray(position, float))

    def _plan(self, position: np.ndarray) -> None:
        goal = self.forest.target_position[:2]
        resolution = self.forest.config.path_resolution
        path = None
        for inflation in (self.config.planning_inflation, 0.5 * (self.config.planning_inflation + self.forest.config.path_inflation),
                          self.forest.config.path_inflation):
            path = plan_path(self.forest, position[:2], goal, inflation, resolution)
            if path is not None:
                break
        self.path = path if path is not None else np.array([position[:2], goal])
        self._index = 0

    def _closest(self, xy: np.ndarray) -> tuple[int, np.ndarray, float]:
        """(segment index, closest point, distance) on the path from the current segment on."""
        best = (self._index, self.path[self._index], math.inf)
        for k in range(self._index, len(self.path) - 1):
            a, b = self.path[k], self.path[k + 1]
            ab = b - a
            t = float(np.clip((xy - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
            point = a + t * ab
            d = float(np.linalg.norm(xy - point))
            if d < best[2] - 1e-9:
                best = (k, point, d)
        return best

    def _lookahead_point(self, k: int, point: np.ndarray) -> np.ndarray:
        remaining = self.config.lookahead
        current = point
        for j in range(k + 1, len(self.path)):
            step = float(np.linalg.norm(self.path[j] - current))
            if step >= remaining:
                return current + (self.path[j] - current) * (remaining / step)
            remaining -= step
            current = self.path[j]
        return self.path[-1]

    def act(self, state: DroneState) -> np.ndarray:
        """The expert action (vx, vy, vz, yaw_rate) for ``state``: float32 [4] within the bounds."""
        if not state.finite:
            raise ValueError("the expert cannot act on a non-finite drone state (the simulation diverged)")
        cfg = self.config
        xy = state.position[:2]
        if len(self.path) < 2:
            self._plan(state.position)
        k, point, off = self._closest(xy)
        if off > cfg.replan_distance:
            self._plan(state.position)
            k, point, off = self._closest(xy)
        self._index = k
        aim = self._lookahead_point(k, point)
        delta = aim - xy
        distance_to_target = float(np.linalg.norm(self.forest.target_position[:2] - xy))
        to_target = self.forest.target_position[:2] - xy
        if cfg.face == "target" and distance_to_target > 0.5:
            heading = math.atan2(to_target[1], to_target[0])
        else:
            heading = math.atan2(delta[1], delta[0]) if float(np.linalg.norm(delta)) > 1e-6 else state.yaw
        yaw_error = wrap_angle(heading - state.yaw)
        speed = min(cfg.cruise_speed, cfg.approach_gain * distance_to_target + 0.2)
        speed *= float(np.clip(math.cos(yaw_error), 0.3, 1.0))
        direction = delta / max(float(np.linalg.norm(delta)), 1e-6)
        world = direction * speed
        c, s = math.cos(state.yaw), math.sin(state.yaw)
        horizontal = np.array([c * world[0] + s * world[1], -s * world[0] + c * world[1]])
        # shrink (vx, vy) together into the bounds so the drone keeps to the path's direction
        horizontal *= min(1.0, float(np.min(ACTION_HIGH[:2] / np.maximum(np.abs(horizontal), 1e-9))))
        vz = cfg.altitude_gain * (self.forest.target_position[2] - state.position[2])
        action = np.array([horizontal[0], horizontal[1], vz, cfg.yaw_gain * yaw_error])
        return np.clip(action, ACTION_LOW, ACTION_HIGH).astype(np.float32)

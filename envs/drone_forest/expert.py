"""The privileged drone-forest expert: a gap-seeking velocity field over the known trunks.

Knows every tree and the target, but decides from the **local** geometry only, the part of the
forest the onboard camera sees, so a camera policy can clone it. Each step:

1. candidate flight directions fan out ``± max_detour`` (48°) around the bearing to the target,
   every ``direction_step``: inside the camera's ±49° horizontal field of view, so the drone only
   flies where it can see (±80° flew no better in a kinematic test on 180 forests);
2. along each, the free distance: how far the drone can fly before it comes within ``margin`` of
   a trunk surface (ray against trunk circles grown by ``margin``), capped at ``horizon``, and at
   the target's distance;
3. the chosen direction is the free one (free distance = the cap) closest to the target bearing,
   with ``hysteresis`` × the change from last step's choice added to the cost so the expert keeps
   to one side of a trunk instead of flickering between gaps; if none is free it takes the
   direction with the most room;
4. speed: ``cruise_speed``, slower near the target (``approach_gain``), in tight spots (free
   distance / horizon, at least 40 %) and while the heading is far off the target;
5. the camera faces the target (yaw rate ``yaw_gain`` × heading error), so the red beacon stays in
   view; vz holds the target's altitude.

A global planner that follows a path around trees out of sight makes commands a camera cannot
explain: a policy cloned from one (session 2) regressed the sidestep with R² < 0 from single
frames and reached the target on 10 % of held-out forests. This field needs no plan and no
memory beyond the last choice, and reaches the target on every held-out forest tried
(see the README's drone table).

Output: the 4-D action (vx, vy, vz m/s; yaw_rate rad/s) within the action bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_control.envs.common import wrap_angle
from lnn_control.envs.drone_forest.backend import DroneState
from lnn_control.envs.drone_forest.controller import ACTION_HIGH, ACTION_LOW
from lnn_control.envs.drone_forest.forest import Forest


@dataclass(frozen=True)
class ExpertConfig:
    """cruise_speed (m/s); horizon: how far ahead (m) a direction must be free; margin: distance
    (m) kept from trunk surfaces (the quad's collision radius is 0.25 m); max_detour /
    direction_step: the fan of candidate directions around the target bearing (rad);
    hysteresis: cost per radian of changing the chosen direction between steps (per radian of
    detour = 1); yaw_gain (1/s); altitude_gain (1/s); approach_gain (1/s: speed ≤ gain ×
    distance to target + 0.2 m/s); velocity_feedback: gain k >= 0 (dimensionless) of the horizontal
    correction ``k (v_cmd - v)`` added to the commanded velocity, ``v`` the measured heading-frame
    velocity: it cancels what the autopilot's velocity loop leaves under a steady push (its P term
    alone holds 3 m/s of wind with a 0.34 m/s error; its clipped integrator needs ~19 s to take
    over), from the same velocity the policy observes; 0 (default) = the pure geometric field."""

    cruise_speed: float = 1.6
    horizon: float = 5.0
    margin: float = 0.6
    max_detour: float = math.radians(48.0)
    direction_step: float = math.radians(4.0)
    hysteresis: float = 0.5
    yaw_gain: float = 1.5
    altitude_gain: float = 1.0
    approach_gain: float = 0.8
    velocity_feedback: float = 0.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name == "velocity_feedback":
                if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 2):
                    raise ValueError(f"ExpertConfig.velocity_feedback must be a finite number in [0, 2], got {value!r}")
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ExpertConfig.{name} must be a finite number > 0, got {value!r}")
        if self.cruise_speed > ACTION_HIGH[0]:
            raise ValueError(f"ExpertConfig.cruise_speed must be ≤ {ACTION_HIGH[0]} m/s, got {self.cruise_speed}")
        if self.max_detour >= math.pi / 2:
            raise ValueError(
                f"ExpertConfig.max_detour must be < π/2 rad (the drone never flies away from the target), "
                f"got {self.max_detour}"
            )
        if self.direction_step > self.max_detour:
            raise ValueError(
                f"ExpertConfig.direction_step ({self.direction_step}) must be ≤ max_detour ({self.max_detour})"
            )


def free_distance(offsets: np.ndarray, directions: np.ndarray, radii: np.ndarray, horizon: float) -> np.ndarray:
    """How far (m) the drone can fly along each unit direction before entering a grown trunk.

    offsets [K, 2]: trunk centres minus the drone's position (m); directions [N, 2]: unit vectors;
    radii [K]: trunk radii plus the margin (m). Returns [N], capped at ``horizon``; 0 for a
    direction that heads further into a circle the drone is already inside.
    """
    if len(offsets) == 0:
        return np.full(len(directions), float(horizon))
    along = directions @ offsets.T  # [N, K] distance along the direction to each centre's foot point
    across2 = (offsets * offsets).sum(axis=1)[None] - along * along
    radius2 = radii[None] ** 2
    hit = (across2 < radius2) & (along > 0.0)
    entry = along - np.sqrt(np.maximum(radius2 - across2, 0.0))
    return np.minimum(np.where(hit, np.maximum(entry, 0.0), np.inf).min(axis=1), horizon)


class DroneExpert:
    """Reset per episode (:meth:`reset`), then :meth:`act` on each drone state."""

    def __init__(self, forest: Forest, config: ExpertConfig | None = None) -> None:
        self.forest = forest
        self.config = ExpertConfig() if config is None else config
        cfg = self.config
        count = int(math.floor(cfg.max_detour / cfg.direction_step + 1e-9))
        self.detours = cfg.direction_step * np.arange(-count, count + 1)
        """Candidate directions relative to the target bearing (rad), [N]."""
        self.last_detour = 0.0
        """The direction chosen last step, relative to the target bearing (rad)."""

    def reset(self) -> None:
        """Forget the last choice (a new episode)."""
        self.last_detour = 0.0

    def choose_direction(self, xy: np.ndarray) -> tuple[float, float]:
        """(world heading of the chosen flight direction (rad), its free distance (m)) from ``xy`` [2]."""
        cfg = self.config
        to_target = self.forest.target_position[:2] - xy
        distance = float(np.linalg.norm(to_target))
        bearing = math.atan2(to_target[1], to_target[0])
        headings = bearing + self.detours
        directions = np.stack([np.cos(headings), np.sin(headings)], axis=1)
        offsets = self.forest.trunk_xy - xy
        radii = self.forest.trunk_radius + cfg.margin
        nearby = np.linalg.norm(offsets, axis=1) < cfg.horizon + radii
        free = free_distance(offsets[nearby], directions, radii[nearby], cfg.horizon)
        needed = min(cfg.horizon, distance)
        cost = np.abs(self.detours) + cfg.hysteresis * np.abs(self.detours - self.last_detour)
        open_ = free >= needed - 1e-6
        if open_.any():
            k = int(np.argmin(np.where(open_, cost, np.inf)))
        else:  # boxed in: the direction with the most room (ties to the cheaper one)
            k = int(np.argmax(free - 1e-3 * cost))
        self.last_detour = float(self.detours[k])
        return float(headings[k]), float(free[k])

    def act(self, state: DroneState) -> np.ndarray:
        """The expert action (vx, vy, vz, yaw_rate) for ``state``: float32 [4] within the bounds."""
        if not state.finite:
            raise ValueError("the expert cannot act on a non-finite drone state (the simulation diverged)")
        cfg = self.config
        xy = state.position[:2]
        to_target = self.forest.target_position[:2] - xy
        distance = float(np.linalg.norm(to_target))
        heading, free = self.choose_direction(xy)
        yaw_error = wrap_angle(math.atan2(to_target[1], to_target[0]) - state.yaw) if distance > 0.5 else 0.0
        speed = min(cfg.cruise_speed, cfg.approach_gain * distance + 0.2)
        speed *= float(np.clip(free / cfg.horizon, 0.4, 1.0)) * float(np.clip(math.cos(yaw_error), 0.3, 1.0))
        relative = heading - state.yaw  # flight direction in the heading frame
        horizontal = speed * np.array([math.cos(relative), math.sin(relative)])
        if cfg.velocity_feedback > 0:
            c, s = math.cos(state.yaw), math.sin(state.yaw)
            vx, vy = float(state.velocity[0]), float(state.velocity[1])
            measured = np.array([c * vx + s * vy, -s * vx + c * vy])  # world -> heading frame
            horizontal = horizontal + cfg.velocity_feedback * (horizontal - measured)
        # shrink (vx, vy) together into the bounds so the drone keeps to the chosen direction
        horizontal *= min(1.0, float(np.min(ACTION_HIGH[:2] / np.maximum(np.abs(horizontal), 1e-9))))
        vz = cfg.altitude_gain * (self.forest.target_position[2] - state.position[2])
        action = np.array([horizontal[0], horizontal[1], vz, cfg.yaw_gain * yaw_error])
        return np.clip(action, ACTION_LOW, ACTION_HIGH).astype(np.float32)

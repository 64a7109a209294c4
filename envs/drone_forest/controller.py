"""The cascaded flight controller shared by every backend: velocity → attitude → body rates → mixer.

Pure NumPy, run by the env's inner loop at the physics rate. Input: the action
``(vx, vy, vz, yaw_rate)`` and a :class:`~.backend.DroneState`; output: four rotor thrusts (N),
saturated to ``[0, max_rotor_thrust]`` in :data:`~.quad.ROTOR_NAMES` order.

**Action semantics** (bounds :data:`ACTION_LOW` / :data:`ACTION_HIGH`, equal to the
``ncp19_drone`` preset's ActionSpec): ``vx`` forward, ``vy`` left, ``vz`` up (m/s) in the *heading
frame* (world frame rotated by the current yaw — level, not tilted with roll/pitch), ``yaw_rate``
(rad/s, + = counter-clockwise seen from above). This is MAVLink ``SET_POSITION_TARGET_LOCAL_NED``
velocity + yaw-rate in ``MAV_FRAME_BODY_NED`` (heading-rotated, type_mask 1479) with the axes
converted from our z-up FLU to NED FRD: ``(vx, −vy, −vz, −yaw_rate)``.

Loops:

1. velocity (PI + drag feed-forward): ``a = Kp (v* − v) + Ki ∫(v* − v) + drag(v)/m``, horizontal
   acceleration limited to ``g·tan(max_tilt)``; thrust vector ``F = m (a + g ẑ)``.
2. attitude: body-rate set-point ``ω* = attitude_p · R^T (z_b × F̂)`` tilts the body z axis onto F̂;
   the yaw-rate command is fed straight to ``r*``; collective thrust = ``F · z_b``.
3. body rates (P + gyroscopic feed-forward): ``τ = I · rate_p ⊙ (ω* − ω) + ω × Iω``.
4. mixer: ``thrusts = A⁻¹ [T, τ]`` (:meth:`~.quad.QuadParams.mixer`); if a rotor saturates, the yaw
   torque is given up first, then thrusts are clipped.

Documented step response (tested on PyBullet, hover start, 1/240 s physics, τ_motor 0.02 s):
a vx step 0 → 1 m/s rises 10→90 % in ≤ 1.5 s with ≤ 20 % overshoot; a vz step 0 → 0.5 m/s rises
in ≤ 1.0 s with ≤ 20 % overshoot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from lnn_control.envs.drone_forest.backend import DroneState
from lnn_control.envs.drone_forest.quad import GRAVITY, QuadParams

ACTION_NAMES: tuple[str, ...] = ("vx", "vy", "vz", "yaw_rate")
ACTION_UNITS: tuple[str, ...] = ("m/s", "m/s", "m/s", "rad/s")
ACTION_LOW: tuple[float, ...] = (-2.0, -1.0, -1.0, -1.0)
ACTION_HIGH: tuple[float, ...] = (2.0, 1.0, 1.0, 1.0)


@dataclass(frozen=True)
class ControllerGains:
    """Gains and limits of :class:`CascadedController` (SI units).

    velocity_p_xy / velocity_p_z: 1/s; velocity_i_xy / velocity_i_z: 1/s²;
    integral_limit: largest acceleration (m/s²) the integrators may command;
    max_tilt: rad; max_climb_acceleration / max_sink_acceleration: m/s² (vertical limits);
    attitude_p: 1/s; rate_p: (roll, pitch, yaw) 1/s; max_rate: rad/s (roll/pitch set-point limit).
    """

    velocity_p_xy: float = 2.2
    velocity_i_xy: float = 0.4
    velocity_p_z: float = 3.5
    velocity_i_z: float = 1.0
    integral_limit: float = 3.0
    max_tilt: float = 0.5
    max_climb_acceleration: float = 6.0
    max_sink_acceleration: float = 5.0
    attitude_p: float = 8.0
    rate_p: tuple[float, float, float] = (28.0, 28.0, 10.0)
    max_rate: float = 4.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            values = value if isinstance(value, tuple) else (value,)
            if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"ControllerGains.{name} must be finite and ≥ 0, got {value!r}")
        if not 0 < self.max_tilt < 1.3:
            raise ValueError(f"ControllerGains.max_tilt must be in (0, 1.3) rad, got {self.max_tilt}")


def heading_to_world(action_xyz: np.ndarray, yaw: float) -> np.ndarray:
    """Heading-frame vector [3] (x forward, y left, z up) → world frame, for heading ``yaw`` (rad)."""
    c, s = math.cos(yaw), math.sin(yaw)
    x, y, z = action_xyz
    return np.array([c * x - s * y, s * x + c * y, z])


class CascadedController:
    """Velocity + yaw-rate command → rotor thrusts. Keeps the velocity integrators: call
    :meth:`reset` at the start of every episode. Deterministic, no randomness."""

    def __init__(self, quad: QuadParams, gains: ControllerGains | None = None) -> None:
        self.quad = quad
        self.gains = ControllerGains() if gains is None else gains
        self._inverse_mixer = np.linalg.inv(quad.mixer())
        self._inertia = np.asarray(quad.inertia, float)
        self._drag = np.asarray(quad.linear_drag, float)
        self._ki = np.array([self.gains.velocity_i_xy] * 2 + [self.gains.velocity_i_z])
        self._kp = np.array([self.gains.velocity_p_xy] * 2 + [self.gains.velocity_p_z])
        self._integral = np.zeros(3)

    def reset(self) -> None:
        self._integral = np.zeros(3)

    def update(self, action: np.ndarray, state: DroneState, dt: float) -> np.ndarray:
        """Rotor thrusts [4] (N) for ``action`` = (vx, vy, vz, yaw_rate) (clipped to the action bounds)
        given ``state``; ``dt`` (s) is the time since the previous call (integrator step)."""
        g = self.gains
        cmd = np.clip(np.asarray(action, float), ACTION_LOW, ACTION_HIGH)
        rotation = state.rotation
        velocity_target = heading_to_world(cmd[:3], state.yaw)
        error = velocity_target - state.velocity
        # velocity loop: PI with clamped integrators + drag feed-forward (own motion, wind unknown)
        limit = g.integral_limit / np.maximum(self._ki, 1e-9)
        self._integral = np.clip(self._integral + error * dt, -limit, limit)
        drag_world = rotation @ (self._drag * (rotation.T @ state.velocity))
        accel = self._kp * error + self._ki * self._integral + drag_world / self.quad.mass
        horizontal = float(np.hypot(accel[0], accel[1]))
        max_horizontal = GRAVITY * math.tan(g.max_tilt)
        if horizontal > max_horizontal:
            accel[:2] *= max_horizontal / horizontal
        accel[2] = float(np.clip(accel[2], -g.max_sink_acceleration, g.max_climb_acceleration))
        force = self.quad.mass * (accel + np.array([0.0, 0.0, GRAVITY]))
        body_z = rotation[:, 2]
        force_dir = force / max(float(np.linalg.norm(force)), 1e-9)
        collective = max(float(force @ body_z), 0.0)
        # attitude loop: rotate body z onto the thrust direction; yaw rate passes through
        tilt_error_body = rotation.T @ np.cross(body_z, force_dir)
        rate_target = np.empty(3)
        rate_target[:2] = np.clip(g.attitude_p * tilt_error_body[:2], -g.max_rate, g.max_rate)
        rate_target[2] = cmd[3]
        # rate loop with gyroscopic feed-forward
        omega = state.angular_velocity
        torque = self._inertia * np.asarray(g.rate_p) * (rate_target - omega) + np.cross(omega, self._inertia * omega)
        return self.mix(collective, torque)

    def mix(self, collective: float, torque: np.ndarray) -> np.ndarray:
        """Rotor thrusts [4] for a collective thrust (N) and body torque [3] (N·m); yaw torque is
        dropped first when a rotor would saturate, then thrusts are clipped to [0, max]."""
        wrench = np.array([collective, *torque])
        thrusts = self._inverse_mixer @ wrench
        top = self.quad.max_rotor_thrust
        if thrusts.min() < 0.0 or thrusts.max() > top:
            wrench[3] = 0.0
            thrusts = self._inverse_mixer @ wrench
        return np.clip(thrusts, 0.0, top)

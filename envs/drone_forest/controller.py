"""The cascaded flight controller shared by every backend: velocity → attitude → body rates → mixer.

Pure NumPy + scalar Python, run by the env's inner loop at 120 Hz (``controller_rate_hz``). Input: the action
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

Documented step response (tested on PyBullet, hover start, 240 Hz physics, 120 Hz controller, τ_motor 0.02 s):
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
    integral_limit: largest acceleration (m/s²) the integrators may command; integral_error: the
    velocity error (m/s) is clipped to ± this before integration (anti-wind-up on steps);
    max_tilt: rad; max_climb_acceleration / max_sink_acceleration: m/s² (vertical limits);
    attitude_p: 1/s; rate_p: (roll, pitch, yaw) 1/s; max_rate: rad/s (roll/pitch set-point limit).
    """

    velocity_p_xy: float = 2.2
    velocity_i_xy: float = 0.4
    velocity_p_z: float = 3.5
    velocity_i_z: float = 1.0
    integral_limit: float = 3.0
    integral_error: float = 0.1
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
        self._inverse_mixer_rows = np.linalg.inv(quad.mixer()).tolist()
        self._drag = tuple(float(d) for d in quad.linear_drag)
        self._ki = [self.gains.velocity_i_xy] * 2 + [self.gains.velocity_i_z]
        self._kp = [self.gains.velocity_p_xy] * 2 + [self.gains.velocity_p_z]
        self._limit = [self.gains.integral_limit / max(k, 1e-9) for k in self._ki]
        self._integral = [0.0, 0.0, 0.0]

    def reset(self) -> None:
        self._integral = [0.0, 0.0, 0.0]

    def update(self, action: np.ndarray, state: DroneState, dt: float) -> np.ndarray:
        """Rotor thrusts [4] (N) for ``action`` = (vx, vy, vz, yaw_rate) (clipped to the action bounds)
        given ``state``; ``dt`` (s) is the time since the previous call (integrator step).

        Scalar Python arithmetic on purpose: this runs 240× per simulated second and NumPy's
        per-call overhead on 3-vectors would cost ~10× more."""
        g = self.gains
        vx, vy, vz, yaw_rate = (min(max(float(a), lo), hi) for a, lo, hi in zip(action, ACTION_LOW, ACTION_HIGH))
        (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = state.rotation.tolist()
        yaw = math.atan2(r10, r00)
        c, s = math.cos(yaw), math.sin(yaw)
        target = (c * vx - s * vy, s * vx + c * vy, vz)
        v = state.velocity.tolist()
        # drag feed-forward (own motion through still air; wind is unknown to the controller): R D R^T v / m
        bx = r00 * v[0] + r10 * v[1] + r20 * v[2]
        by = r01 * v[0] + r11 * v[1] + r21 * v[2]
        bz = r02 * v[0] + r12 * v[1] + r22 * v[2]
        dx, dy, dz = self._drag[0] * bx, self._drag[1] * by, self._drag[2] * bz
        drag = (r00 * dx + r01 * dy + r02 * dz, r10 * dx + r11 * dy + r12 * dz, r20 * dx + r21 * dy + r22 * dz)
        accel = [0.0, 0.0, 0.0]
        for i in range(3):
            error = target[i] - v[i]
            # integrate the error clipped to ±integral_error (no wind-up while a step command rises)
            clipped = min(max(error, -g.integral_error), g.integral_error)
            self._integral[i] = min(max(self._integral[i] + clipped * dt, -self._limit[i]), self._limit[i])
            accel[i] = self._kp[i] * error + self._ki[i] * self._integral[i] + drag[i] / self.quad.mass
        horizontal = math.hypot(accel[0], accel[1])
        max_horizontal = GRAVITY * math.tan(g.max_tilt)
        if horizontal > max_horizontal:
            accel[0] *= max_horizontal / horizontal
            accel[1] *= max_horizontal / horizontal
        accel[2] = min(max(accel[2], -g.max_sink_acceleration), g.max_climb_acceleration)
        m = self.quad.mass
        fx, fy, fz = m * accel[0], m * accel[1], m * (accel[2] + GRAVITY)
        norm = max(math.sqrt(fx * fx + fy * fy + fz * fz), 1e-9)
        ux, uy, uz = fx / norm, fy / norm, fz / norm
        collective = max(fx * r02 + fy * r12 + fz * r22, 0.0)
        # attitude loop: rotate body z onto the thrust direction (error = z_b × F̂ in the body frame)
        ex, ey, ez = r12 * uz - r22 * uy, r22 * ux - r02 * uz, r02 * uy - r12 * ux
        error_bx = r00 * ex + r10 * ey + r20 * ez
        error_by = r01 * ex + r11 * ey + r21 * ez
        p_target = min(max(g.attitude_p * error_bx, -g.max_rate), g.max_rate)
        q_target = min(max(g.attitude_p * error_by, -g.max_rate), g.max_rate)
        # rate loop with gyroscopic feed-forward ω × Iω
        wp, wq, wr = state.angular_velocity.tolist()
        ixx, iyy, izz = self.quad.inertia
        kp, kq, kr = g.rate_p
        torque = (
            ixx * kp * (p_target - wp) + (wq * izz * wr - wr * iyy * wq),
            iyy * kq * (q_target - wq) + (wr * ixx * wp - wp * izz * wr),
            izz * kr * (yaw_rate - wr) + (wp * iyy * wq - wq * ixx * wp),
        )
        return self.mix(collective, torque)

    def mix(self, collective: float, torque: tuple[float, float, float] | np.ndarray) -> np.ndarray:
        """Rotor thrusts [4] for a collective thrust (N) and body torque [3] (N·m); yaw torque is
        dropped first when a rotor would saturate, then thrusts are clipped to [0, max]."""
        m = self._inverse_mixer_rows
        top = self.quad.max_rotor_thrust
        tx, ty, tz = torque
        thrusts = [a * collective + b * tx + c * ty + d * tz for a, b, c, d in m]
        if min(thrusts) < 0.0 or max(thrusts) > top:
            thrusts = [a * collective + b * tx + c * ty for a, b, c, _ in m]
        return np.array([min(max(t, 0.0), top) for t in thrusts])

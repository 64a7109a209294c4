"""The quadrotor: ONE place for geometry, rotor layout, physics and camera mount used by every backend.

Body frame: x forward, y left, z up (FLU); world frame: x east-ish, y north-ish, z up (ENU-like).
Units: m, kg, s, N, N·m, rad. An X-frame vehicle of the PX4/ArduPilot 250–450 class: 1.0 kg,
thrust-to-weight 2.5.

Rotor order (PX4 "Quad X" numbering, seen from above):

====  ===========  ==========  ===========================
idx   name         position    spin (seen from above)
====  ===========  ==========  ===========================
0     front_right  (+a, −a)    counter-clockwise (+1)
1     rear_left    (−a, +a)    counter-clockwise (+1)
2     front_left   (+a, +a)    clockwise (−1)
3     rear_right   (−a, −a)    clockwise (−1)
====  ===========  ==========  ===========================

with ``a = arm_length / √2``. Each rotor pushes along body +z with thrust ``T_i`` in
``[0, max_rotor_thrust]`` and exerts a reaction torque ``−spin_i · yaw_torque_coefficient · T_i``
about body +z on the airframe (a CCW rotor yaws the body clockwise). Drag: force
``−linear_drag ⊙ v_air_body`` (N, per body axis), ``v_air = v − wind``.

Motors are a first-order lag with ``motor_time_constant`` on the commanded thrust
(:func:`motor_response`), applied by the env's inner loop identically for every backend; backends
apply the thrusts they are given, clipped to ``[0, max_rotor_thrust]``.

Default camera: 64 (H) × 128 (W) RGB, 60° vertical FOV, ``camera_forward`` ahead of the centre of
mass, pitched ``camera_pitch`` (rad, > 0 looks down) relative to the body x axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ROTOR_NAMES: tuple[str, ...] = ("front_right", "rear_left", "front_left", "rear_right")
"""Rotor names in controller/backend order (PX4 Quad X motor 1..4)."""

ROTOR_SPIN: tuple[int, ...] = (1, 1, -1, -1)
"""+1 = counter-clockwise seen from above (reaction torque yaws the body clockwise, −z)."""

_ROTOR_SIGNS = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])  # (x, y) sign per rotor

GRAVITY = 9.81
"""m/s², along world −z."""


@dataclass(frozen=True)
class QuadParams:
    """Geometry, mass properties, actuators, drag and camera mount of the quadrotor.

    mass (kg); arm_length: centre to rotor hub (m); inertia: diagonal (Ixx, Iyy, Izz) in kg·m².
    thrust_to_weight: total max thrust / weight; max_rotor_thrust = that × m g / 4 (N).
    yaw_torque_coefficient: rotor reaction torque per newton of thrust (N·m/N = m).
    linear_drag: body-axis linear drag coefficients (N per m/s of airspeed).
    motor_time_constant: first-order rotor thrust lag (s); 0 = instantaneous.
    body_half_extents: collision/visual box of the airframe (m); collision_radius: sphere used by the
        task's geometric collision test against trunks and the ground (m).
    camera_forward / camera_up: mount relative to the centre of mass (m); camera_pitch: rad, > 0 looks
        down; camera_vertical_fov_deg; image_height/width (px); camera_near/far (m).
    """

    mass: float = 1.0
    arm_length: float = 0.17
    inertia: tuple[float, float, float] = (0.0082, 0.0082, 0.0149)
    thrust_to_weight: float = 2.5
    yaw_torque_coefficient: float = 0.016
    linear_drag: tuple[float, float, float] = (0.25, 0.25, 0.35)
    motor_time_constant: float = 0.02
    body_half_extents: tuple[float, float, float] = (0.12, 0.12, 0.04)
    collision_radius: float = 0.25
    camera_forward: float = 0.14
    camera_up: float = 0.02
    camera_pitch: float = 0.10
    camera_vertical_fov_deg: float = 60.0
    image_height: int = 64
    image_width: int = 128
    camera_near: float = 0.05
    camera_far: float = 40.0

    def __post_init__(self) -> None:
        positive = (
            "mass", "arm_length", "thrust_to_weight", "yaw_torque_coefficient", "collision_radius",
            "camera_vertical_fov_deg", "camera_near", "camera_far",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"QuadParams.{name} must be a finite number > 0, got {value!r}")
        for name in ("inertia", "linear_drag", "body_half_extents"):
            value = getattr(self, name)
            if len(value) != 3 or not all(math.isfinite(v) and v >= 0 for v in value):
                raise ValueError(f"QuadParams.{name} must be 3 finite numbers ≥ 0, got {value!r}")
        if min(self.inertia) <= 0:
            raise ValueError(f"QuadParams.inertia must be > 0 on every axis, got {self.inertia}")
        if self.thrust_to_weight <= 1.0:
            raise ValueError(f"QuadParams.thrust_to_weight must exceed 1 (else it cannot hover), got {self.thrust_to_weight}")
        if self.motor_time_constant < 0:
            raise ValueError(f"QuadParams.motor_time_constant must be ≥ 0 s, got {self.motor_time_constant}")
        if not 0 < self.camera_vertical_fov_deg < 170:
            raise ValueError(f"QuadParams.camera_vertical_fov_deg must be in (0, 170), got {self.camera_vertical_fov_deg}")
        for name in ("image_height", "image_width"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 8 <= value <= 1024):
                raise ValueError(f"QuadParams.{name} must be an int in [8, 1024], got {value!r}")
        if self.camera_far <= self.camera_near:
            raise ValueError(f"QuadParams.camera_far={self.camera_far} must exceed camera_near={self.camera_near}")

    @property
    def weight(self) -> float:
        """m·g (N)."""
        return self.mass * GRAVITY

    @property
    def max_rotor_thrust(self) -> float:
        """Largest thrust of one rotor (N)."""
        return self.thrust_to_weight * self.weight / 4.0

    @property
    def hover_thrust(self) -> float:
        """Per-rotor thrust that balances gravity (N)."""
        return self.weight / 4.0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, 3) of camera frames."""
        return (self.image_height, self.image_width, 3)

    def rotor_positions(self) -> np.ndarray:
        """Rotor hub positions in the body frame, [4, 3] (m), in :data:`ROTOR_NAMES` order."""
        a = self.arm_length / math.sqrt(2.0)
        return np.concatenate([_ROTOR_SIGNS * a, np.zeros((4, 1))], axis=1)

    def mixer(self) -> np.ndarray:
        """Matrix A [4, 4] with ``[total thrust N, τx, τy, τz N·m] = A @ thrusts[4]`` (body frame)."""
        pos = self.rotor_positions()
        spin = np.asarray(ROTOR_SPIN, float)
        return np.stack([np.ones(4), pos[:, 1], -pos[:, 0], -spin * self.yaw_torque_coefficient])

    def body_wrench(self, thrusts: np.ndarray) -> tuple[float, np.ndarray]:
        """Total thrust (N, along body +z) and body torque [3] (N·m) of rotor ``thrusts`` [4]."""
        wrench = self.mixer() @ np.asarray(thrusts, float)
        return float(wrench[0]), wrench[1:]

    def clip_thrusts(self, thrusts: np.ndarray) -> np.ndarray:
        """Rotor thrusts [4] clipped to [0, max_rotor_thrust] (N); NaN becomes 0."""
        values = np.asarray(thrusts, float)
        return np.clip(np.where(np.isfinite(values), values, 0.0), 0.0, self.max_rotor_thrust)

    def drag_force_body(self, air_velocity_body: np.ndarray) -> np.ndarray:
        """Linear drag (N, body frame) for the airspeed vector in the body frame (m/s)."""
        return -np.asarray(self.linear_drag) * np.asarray(air_velocity_body, float)

    def camera_pose(
        self, position: np.ndarray, rotation: np.ndarray, pitch_offset: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World camera (eye, a point 1 m along the optical axis, up vector) for the body at
        ``position`` [3] with body-to-world ``rotation`` [3, 3]."""
        pitch = self.camera_pitch + pitch_offset
        eye = np.asarray(position, float) + rotation @ np.array([self.camera_forward, 0.0, self.camera_up])
        axis = rotation @ np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
        up = rotation @ np.array([math.sin(pitch), 0.0, math.cos(pitch)])
        return eye, eye + axis, up


def motor_response(current: np.ndarray, command: np.ndarray, dt: float, time_constant: float) -> np.ndarray:
    """Rotor thrusts after ``dt`` s of a first-order lag from ``current`` towards ``command`` (N, [4])."""
    if time_constant <= 0:
        return np.asarray(command, float).copy()
    alpha = 1.0 - math.exp(-dt / time_constant)
    return np.asarray(current, float) + alpha * (np.asarray(command, float) - np.asarray(current, float))

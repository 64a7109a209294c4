"""The 1/10-scale car: ONE place for geometry, physics and camera mount used by every backend.

Car frame: x forward, y left, z up; origin = the point on the ground midway between the front and
rear axles (the "reference point"; ``VehicleState.x/y`` is this point in the world). Units: m, kg,
rad, s, N·m. Sized like an F1TENTH / Donkeycar / MIT RACECAR class car.

Default camera: 64 (H) × 128 (W) RGB, 50° vertical field of view (≈ 86° horizontal), 0.20 m above
the ground, 0.10 m ahead of the reference point, pitched 0.35 rad (20°) down — like a hood-mounted
wide-angle camera on a Donkeycar. 128 px wide keeps CPU training fast (the policy CNN's default input).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

WHEEL_NAMES: tuple[str, ...] = ("front_left", "front_right", "rear_left", "rear_right")
"""Wheel names used by every backend (joint/body names and ``VehicleState.wheel_contacts`` order)."""


@dataclass(frozen=True)
class CarParams:
    """Geometry, physics and camera mount of the car.

    wheelbase / track: axle distance and left-right wheel distance (m).
    wheel_radius / wheel_width (m); chassis_length/width/height (m) of the body box, whose bottom is
        ``chassis_clearance`` above the ground.
    chassis_mass / wheel_mass (kg).
    max_steering: front-wheel steering limit (rad, symmetric); steering_rate: servo speed (rad/s);
        steering_stiffness: max servo torque (N·m).
    max_speed: largest commandable forward speed (m/s); nominal speeds are 1–3 m/s.
    drive: driven wheels; max_drive_torque: per driven wheel (N·m) of the cruise controller's motor.
    tyre_friction: tyre–road friction coefficient (wet road = a backend's friction scale < 1).
    rolling_friction: rolling resistance coefficient (dimensionless, backend-specific interpretation).
    camera_*: mount relative to the reference point; pitch > 0 looks down; fov is vertical (deg).
    image_height / image_width: camera frame size (px).
    camera_near / camera_far: clip planes (m).
    """

    wheelbase: float = 0.30
    track: float = 0.20
    wheel_radius: float = 0.05
    wheel_width: float = 0.035
    chassis_length: float = 0.40
    chassis_width: float = 0.18
    chassis_height: float = 0.06
    chassis_clearance: float = 0.03
    chassis_mass: float = 2.5
    wheel_mass: float = 0.1
    max_steering: float = 0.4
    steering_rate: float = 5.0
    steering_stiffness: float = 2.0
    max_speed: float = 3.0
    drive: Literal["rear", "all"] = "rear"
    max_drive_torque: float = 0.6
    tyre_friction: float = 1.0
    rolling_friction: float = 0.001
    camera_height: float = 0.20
    camera_forward: float = 0.10
    camera_pitch: float = 0.35
    camera_vertical_fov_deg: float = 50.0
    image_height: int = 64
    image_width: int = 128
    camera_near: float = 0.02
    camera_far: float = 25.0

    def __post_init__(self) -> None:
        positive = (
            "wheelbase", "track", "wheel_radius", "wheel_width", "chassis_length", "chassis_width",
            "chassis_height", "chassis_mass", "wheel_mass", "max_steering", "steering_rate",
            "steering_stiffness", "max_speed", "max_drive_torque", "tyre_friction", "camera_height",
            "camera_vertical_fov_deg", "camera_near", "camera_far",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"CarParams.{name} must be a finite number > 0, got {value!r}")
        for name in ("chassis_clearance", "rolling_friction", "camera_forward", "camera_pitch"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"CarParams.{name} must be a finite number, got {value!r}")
        if self.chassis_clearance < 0 or self.rolling_friction < 0:
            raise ValueError(
                f"CarParams.chassis_clearance ({self.chassis_clearance}) and rolling_friction "
                f"({self.rolling_friction}) must be ≥ 0"
            )
        if not self.max_steering < 1.0:
            raise ValueError(f"CarParams.max_steering must be < 1 rad, got {self.max_steering}")
        if self.drive not in ("rear", "all"):
            raise ValueError(f"CarParams.drive must be 'rear' or 'all', got {self.drive!r}")
        if not 0 < self.camera_vertical_fov_deg < 170:
            raise ValueError(f"CarParams.camera_vertical_fov_deg must be in (0, 170), got {self.camera_vertical_fov_deg}")
        for name in ("image_height", "image_width"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 8 <= value <= 1024):
                raise ValueError(f"CarParams.{name} must be an int in [8, 1024], got {value!r}")
        if self.camera_far <= self.camera_near:
            raise ValueError(f"CarParams.camera_far={self.camera_far} must exceed camera_near={self.camera_near}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, 3) of camera frames."""
        return (self.image_height, self.image_width, 3)

    @property
    def driven_wheels(self) -> tuple[str, ...]:
        return WHEEL_NAMES[2:] if self.drive == "rear" else WHEEL_NAMES

    def wheel_position(self, name: str) -> np.ndarray:
        """Wheel centre in the car frame (m): front wheels at +wheelbase/2, left at +track/2."""
        if name not in WHEEL_NAMES:
            raise ValueError(f"unknown wheel {name!r}; wheels are {WHEEL_NAMES}")
        x = 0.5 * self.wheelbase if name.startswith("front") else -0.5 * self.wheelbase
        y = 0.5 * self.track if name.endswith("left") else -0.5 * self.track
        return np.array([x, y, self.wheel_radius])

    def ackermann_angle(self, name: str, steering: float) -> float:
        """Angle (rad, + = left) of front wheel ``name`` for the bicycle-model front-wheel angle
        ``steering``: both front wheels point at the common turn centre on the rear axle line
        (Ackermann geometry), so the inner wheel turns further than ``steering``."""
        if name not in WHEEL_NAMES[:2]:
            raise ValueError(f"ackermann_angle needs a front wheel {WHEEL_NAMES[:2]}, got {name!r}")
        curvature = math.tan(steering) / self.wheelbase  # of the rear-axle centre's path, + = left
        if abs(curvature) <= 1e-9:
            return 0.0
        side = self.wheel_position(name)[1]
        return math.atan2(self.wheelbase * curvature, 1.0 - side * curvature)

    def wheel_ground_speed(self, name: str, speed: float, steering: float) -> float:
        """Ground speed (m/s) of wheel ``name`` when the rear-axle centre moves at ``speed`` on the
        turn of bicycle-model angle ``steering`` (the electronic differential's per-wheel target)."""
        curvature = math.tan(steering) / self.wheelbase
        x, side, _ = self.wheel_position(name)
        x += 0.5 * self.wheelbase  # from the rear axle
        return speed * math.hypot(1.0 - side * curvature, x * curvature)

    def steering_from_normalized(self, value: float) -> float:
        """Normalised steering in [-1, 1] (+ = left) → front-wheel angle (rad)."""
        return float(np.clip(value, -1.0, 1.0)) * self.max_steering

    def normalized_from_steering(self, angle: float) -> float:
        """Front-wheel angle (rad) → normalised steering, clipped to [-1, 1]."""
        return float(np.clip(angle / self.max_steering, -1.0, 1.0))

    def camera_pose(
        self, x: float, y: float, yaw: float, pitch_offset: float = 0.0, height_offset: float = 0.0,
        yaw_offset: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World camera (eye, target 1 m ahead along the optical axis, up vector) for a car at
        (x, y, yaw) on flat ground, with optional mount jitter (rad, m, rad)."""
        heading = yaw + yaw_offset
        pitch = self.camera_pitch + pitch_offset
        forward = np.array([np.cos(heading), np.sin(heading)])
        eye = np.array([
            x + self.camera_forward * np.cos(yaw),
            y + self.camera_forward * np.sin(yaw),
            self.camera_height + height_offset,
        ])
        axis = np.array([forward[0] * np.cos(pitch), forward[1] * np.cos(pitch), -np.sin(pitch)])
        up = np.array([forward[0] * np.sin(pitch), forward[1] * np.sin(pitch), np.cos(pitch)])
        return eye, eye + axis, up

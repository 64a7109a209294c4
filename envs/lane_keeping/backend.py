"""The physics-backend protocol the lane-keeping env talks to, and the typed state it reads.

A backend (PyBullet, MuJoCo, …) builds the world from a :class:`~.road.Road`, a
:class:`~.car.CarParams` and a :class:`VisualVariation`, steps physics at its own fixed rate and
renders cameras. Everything task-related (offsets, rewards, termination, expert) lives in
:mod:`.task` / :mod:`.expert` and reads only :class:`VehicleState`, so every backend — and a real
car — looks the same to it.

Call order: ``build`` (once per road; may be called again for a new road) → ``reset`` →
repeatedly ``set_command`` + ``advance`` + ``vehicle_state`` / ``render_camera`` → ``close``.
``open_viewer`` may be called before or after ``build``; ``sync_viewer`` after each env step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from lnn_control.envs.common import rgb
from lnn_control.envs.lane_keeping.car import CarParams
from lnn_control.envs.lane_keeping.road import Road
from lnn_control.registry import LazyRegistry

BackendName = Literal["pybullet", "mujoco"]

BACKENDS = LazyRegistry("lane-keeping backend", {
    "pybullet": "lnn_control.envs.lane_keeping.pybullet_backend:PyBulletLaneBackend",
    "mujoco": "lnn_control.envs.lane_keeping.mujoco_backend:MujocoLaneBackend",
})
"""Backend name → "module:Class"; the module is imported only when that backend is chosen."""


@dataclass(frozen=True)
class Pose2D:
    """A pose on the ground: reference point (m, world) and yaw (rad, 0 = +x, counter-clockwise)."""

    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class VehicleState:
    """What the task logic reads from a backend (or a real car's state estimator).

    time: simulated seconds since ``reset``.
    x, y: reference point (midway between the axles, on the ground) in the world (m).
    yaw: heading (rad, wrapped to (-π, π]); roll, pitch: body tilt (rad).
    speed: forward velocity along the car's x axis (m/s, negative when reversing).
    lateral_speed: velocity along the car's y axis (m/s, + = left).
    yaw_rate: rad/s (+ = turning left).
    steering_angle: actual front-wheel angle (rad, mean of both front wheels, + = left).
    wheel_contacts: per wheel in :data:`~.car.WHEEL_NAMES` order, True if touching the ground.
    """

    time: float
    x: float
    y: float
    yaw: float
    roll: float
    pitch: float
    speed: float
    lateral_speed: float
    yaw_rate: float
    steering_angle: float
    wheel_contacts: tuple[bool, ...]

    @property
    def finite(self) -> bool:
        """False if any numeric field is NaN/inf (the simulation blew up)."""
        values = (
            self.time, self.x, self.y, self.yaw, self.roll, self.pitch, self.speed,
            self.lateral_speed, self.yaw_rate, self.steering_angle,
        )
        return all(math.isfinite(v) for v in values)

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y])


@dataclass(frozen=True)
class VisualVariation:
    """Appearance of one episode (domain randomisation). Colours are RGB in [0, 1].

    light_direction: unit-ish vector pointing TOWARDS the light (world frame).
    ambient / diffuse: lighting coefficients in [0, 1].
    camera_*_offset: mount jitter added to :class:`~.car.CarParams` (rad, m, rad).
    texture_seed: seed for procedural surface noise (asphalt/grass speckle) where a backend supports it.
    texture_strength: amplitude of that noise (0 = flat colours).
    """

    asphalt_color: tuple[float, float, float] = (0.32, 0.32, 0.34)
    grass_color: tuple[float, float, float] = (0.30, 0.55, 0.25)
    line_color: tuple[float, float, float] = (0.95, 0.95, 0.95)
    centre_line_color: tuple[float, float, float] = (0.95, 0.85, 0.25)
    sky_color: tuple[float, float, float] = (0.65, 0.78, 0.95)
    car_color: tuple[float, float, float] = (0.8, 0.1, 0.1)
    light_direction: tuple[float, float, float] = (0.4, 0.3, 1.0)
    ambient: float = 0.6
    diffuse: float = 0.5
    camera_pitch_offset: float = 0.0
    camera_height_offset: float = 0.0
    camera_yaw_offset: float = 0.0
    texture_seed: int = 0
    texture_strength: float = 0.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> VisualVariation:
        """A random appearance: colours, lighting and camera-mount jitter drawn from ``rng``."""

        def jitter(base: tuple[float, float, float], amount: float) -> tuple[float, float, float]:
            scale = rng.uniform(1 - amount, 1 + amount)
            tint = rng.uniform(-amount / 2, amount / 2, 3)
            return rgb(np.clip(c * scale + t, 0.0, 1.0) for c, t in zip(base, tint))

        azimuth = rng.uniform(-np.pi, np.pi)
        elevation = rng.uniform(0.4, 1.4)
        light = (
            float(np.cos(elevation) * np.cos(azimuth)),
            float(np.cos(elevation) * np.sin(azimuth)),
            float(np.sin(elevation)),
        )
        grey = float(rng.uniform(0.18, 0.45))
        grass_base = (rng.uniform(0.2, 0.45), rng.uniform(0.4, 0.65), rng.uniform(0.15, 0.3))
        return cls(
            asphalt_color=jitter((grey, grey, grey * 1.05), 0.1),
            grass_color=rgb(grass_base),
            line_color=jitter((0.95, 0.95, 0.95), 0.08),
            centre_line_color=jitter((0.95, 0.85, 0.25), 0.15) if rng.random() < 0.5 else jitter((0.95, 0.95, 0.95), 0.08),
            sky_color=jitter((0.65, 0.78, 0.95), 0.15),
            car_color=rgb(rng.uniform(0.1, 0.9, 3)),
            light_direction=light,
            ambient=float(rng.uniform(0.4, 0.8)),
            diffuse=float(rng.uniform(0.3, 0.7)),
            camera_pitch_offset=float(rng.uniform(-0.05, 0.05)),
            camera_height_offset=float(rng.uniform(-0.02, 0.02)),
            camera_yaw_offset=float(rng.uniform(-0.03, 0.03)),
            texture_seed=int(rng.integers(0, 2**31 - 1)),
            texture_strength=float(rng.uniform(0.0, 0.15)),
        )


APPEARANCES: dict[str, VisualVariation] = {
    "default": VisualVariation(),
    # A shifted world for fine-tuning studies: pale concrete road on sand under a hazy low sun,
    # faded orange centre line, heavy surface speckle. Road brighter than its surroundings, the
    # opposite of the training worlds (dark asphalt on grass, also under domain randomisation).
    "desert": VisualVariation(
        asphalt_color=(0.66, 0.63, 0.58),
        grass_color=(0.80, 0.64, 0.40),
        line_color=(0.97, 0.97, 0.93),
        centre_line_color=(0.90, 0.50, 0.15),
        sky_color=(0.88, 0.84, 0.74),
        light_direction=(0.8, -0.5, 0.35),
        ambient=0.55,
        diffuse=0.6,
        texture_seed=7,
        texture_strength=0.3,
    ),
}
"""Named appearances for ``LaneKeepingEnv(appearance=...)``: the default world and shifted ones."""


def appearance_from(value: object) -> VisualVariation:
    """A :class:`VisualVariation` from a preset name in :data:`APPEARANCES`, an instance, or a
    mapping of its fields (colours as 3-lists); errors name the value and what is allowed."""
    if isinstance(value, VisualVariation):
        return value
    if isinstance(value, str):
        if value not in APPEARANCES:
            raise ValueError(f"unknown appearance {value!r}; choose one of {sorted(APPEARANCES)} "
                             "or give a mapping of VisualVariation fields")
        return APPEARANCES[value]
    from lnn_control.envs.common import config_from

    return config_from(VisualVariation, value, "appearance", "LaneKeepingEnv")


@runtime_checkable
class LaneBackend(Protocol):
    """A physics + rendering backend for the lane-keeping task (see module docstring for call order)."""

    visuals: VisualVariation
    """The appearance of the last :meth:`build` (camera-mount offsets included)."""

    def build(self, road: Road, car: CarParams, visuals: VisualVariation, physics_dt: float) -> None:
        """Create (or recreate) the world: ground, the road as ONE visual body, the car.
        ``physics_dt``: fixed physics step (s), e.g. 1/200."""
        ...

    def reset(self, pose: Pose2D, speed: float) -> None:
        """Place the car at ``pose`` (wheels on the ground, steering straight) moving forward at
        ``speed`` (m/s); simulated time restarts at 0."""
        ...

    def set_command(self, steering: float, target_speed: float) -> None:
        """Front-wheel angle set-point (rad, clipped to ±max_steering, reached at ``steering_rate``)
        and cruise-control target speed (m/s, clipped to [0, max_speed])."""
        ...

    def advance(self, duration: float) -> None:
        """Step physics for ``duration`` seconds (rounded to whole physics steps, at least one)."""
        ...

    def vehicle_state(self) -> VehicleState: ...

    def render_camera(self) -> np.ndarray:
        """The onboard camera frame: uint8 [image_height, image_width, 3]."""
        ...

    def render_chase(self, width: int, height: int) -> np.ndarray:
        """A third-person view from behind and above the car: uint8 [height, width, 3]."""
        ...

    def set_friction_scale(self, scale: float) -> None:
        """Multiply tyre–road friction by ``scale`` in (0, 1] (1 = dry); persists across resets."""
        ...

    def open_viewer(self) -> None:
        """Show the simulator's own interactive viewer (human render mode)."""
        ...

    def sync_viewer(self) -> None:
        """Bring the viewer up to date with the simulation (no-op without a viewer)."""
        ...

    def close(self) -> None: ...


CHASE_DISTANCE, CHASE_HEIGHT, CHASE_LOOK_AHEAD, CHASE_FOV_DEG = 1.2, 0.8, 0.6, 60.0
"""The chase view every backend renders: eye ``CHASE_DISTANCE`` m behind and ``CHASE_HEIGHT`` m above
the car's reference point, looking at the ground ``CHASE_LOOK_AHEAD`` m ahead of it; vertical FOV (deg)."""


def chase_camera(state: VehicleState) -> tuple[np.ndarray, np.ndarray]:
    """(eye, look-at point) of the chase view for ``state``: world-frame (3,) arrays in metres."""
    forward = np.array([math.cos(state.yaw), math.sin(state.yaw), 0.0])
    position = np.array([state.x, state.y, 0.0])
    eye = position - CHASE_DISTANCE * forward + np.array([0.0, 0.0, CHASE_HEIGHT])
    return eye, position + CHASE_LOOK_AHEAD * forward


def make_backend(name: str) -> LaneBackend:
    """Instantiate backend ``name`` ("pybullet" or "mujoco"), importing its simulator only now."""
    if name not in BACKENDS:
        raise ValueError(f"unknown lane-keeping backend {name!r}; choose one of {BACKENDS.names()}")
    try:
        backend_class = BACKENDS.get(name)
    except ModuleNotFoundError as exc:
        other = [n for n in BACKENDS.names() if n != name]
        raise RuntimeError(
            f"lane-keeping backend {name!r} cannot be loaded ({exc}); install the missing package "
            f"or choose backend={other[0]!r}"
        ) from exc
    return backend_class()

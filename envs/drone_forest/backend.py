"""The physics-backend protocol the drone-forest env talks to, and the typed state it reads.

A backend (PyBullet, MuJoCo, …) builds the world from a :class:`~.forest.Forest`, a
:class:`~.quad.QuadParams` and a :class:`VisualVariation`, applies the four rotor thrusts it is
given (plus the rotors' yaw reaction torques and linear drag against the wind) and steps physics at
its fixed ``physics_dt``. The cascaded controller (:mod:`.controller`) and the motor lag
(:func:`~.quad.motor_response`) run in the env's inner loop, identical for every backend: per
controller tick (120 Hz) the env calls ``drone_state`` → controller, then per physics step
``set_rotor_thrusts`` (motor lag applied) → ``advance(physics_dt)``.
Everything task-related (distance, clearance, collisions, termination, expert) lives in
:mod:`.task` / :mod:`.expert` and reads only :class:`DroneState` and the forest.

Call order: ``build`` (once per forest; may be called again) → ``reset`` → repeatedly
``set_rotor_thrusts`` + ``advance`` + ``drone_state`` / ``render_camera`` → ``close``.
``open_viewer`` may be called before or after ``build``; ``sync_viewer`` after each env step.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from lnn_control.envs.common import rgb
from lnn_control.envs.drone_forest.forest import Forest
from lnn_control.envs.drone_forest.quad import QuadParams
from lnn_control.registry import LazyRegistry

BackendName = Literal["pybullet", "mujoco"]

BACKENDS = LazyRegistry("drone-forest backend", {
    "pybullet": "lnn_control.envs.drone_forest.pybullet_backend:PyBulletDroneBackend",
    "mujoco": "lnn_control.envs.drone_forest.mujoco_backend:MujocoDroneBackend",
})
"""Backend name → "module:Class"; the module is imported only when that backend is chosen."""

CHASE_FOV_DEG = 60.0
"""Vertical field of view of the third-person chase view (deg)."""

TARGET_HALF_EXTENTS: tuple[float, float, float] = (0.5, 0.5, 1.0)
"""Half sizes (m) of the target beacon, a visual-only red box centred on the target point, on a
thin pole down to the ground; both backends draw it from here. 1 m × 1 m × 2 m: the onboard camera
(55 px focal length) sees it ≈ 3 × 6 px at 20 m and ≈ 2 × 4 px at 30 m. The first 0.6 m cube was
1–2 px wide at those ranges and a cloned policy never learned to find it."""


def quat_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Body-to-world rotation [3, 3] from a unit quaternion (w, x, y, z)."""
    w, x, y, z = (float(c) for c in quaternion)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if n < 1e-12:
        raise ValueError(f"quaternion {quaternion!r} has zero length")
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def yaw_quaternion(yaw: float) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a pure rotation by ``yaw`` rad about world +z."""
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


@dataclass(frozen=True, eq=False)
class DroneState:
    """What the controller and task logic read from a backend (or a real vehicle's estimator).

    time: simulated seconds since ``reset``.
    position: [3] centre of mass in the world (m, z up).
    quaternion: [4] body-to-world orientation (w, x, y, z), body x forward, y left, z up.
    velocity: [3] linear velocity in the world frame (m/s).
    angular_velocity: [3] body-frame angular rates (p, q, r) (rad/s).
    """

    time: float
    position: np.ndarray
    quaternion: np.ndarray
    velocity: np.ndarray
    angular_velocity: np.ndarray

    def __post_init__(self) -> None:
        for name in ("position", "quaternion", "velocity", "angular_velocity"):
            object.__setattr__(self, name, np.array(getattr(self, name), dtype=float))

    @functools.cached_property
    def rotation(self) -> np.ndarray:
        """Body-to-world rotation [3, 3] (NaN if the quaternion is not finite)."""
        if not np.all(np.isfinite(self.quaternion)):
            return np.full((3, 3), np.nan)
        return quat_to_matrix(self.quaternion)

    @property
    def finite(self) -> bool:
        """False if any field is NaN/inf (the simulation blew up)."""
        total = self.time + self.position.sum() + self.quaternion.sum() + self.velocity.sum() + self.angular_velocity.sum()
        return math.isfinite(float(total))  # NaN and inf propagate through the sum (inf − inf = NaN)

    @property
    def yaw(self) -> float:
        """Heading of the body x axis projected on the ground (rad, 0 = world +x, CCW)."""
        return float(math.atan2(self.rotation[1, 0], self.rotation[0, 0]))

    @property
    def roll(self) -> float:
        return float(math.atan2(self.rotation[2, 1], self.rotation[2, 2]))

    @property
    def pitch(self) -> float:
        """Rad, + = nose down (ZYX Euler convention about body y)."""
        return float(math.asin(float(np.clip(-self.rotation[2, 0], -1.0, 1.0))))

    @property
    def tilt(self) -> float:
        """Angle between body z and world z (rad)."""
        return float(math.acos(float(np.clip(self.rotation[2, 2], -1.0, 1.0))))

    @property
    def heading_velocity(self) -> np.ndarray:
        """[3] velocity in the heading (body-yaw) frame: x forward, y left, z up (m/s) — the frame
        of the action's (vx, vy, vz)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        vx, vy, vz = self.velocity
        return np.array([c * vx + s * vy, -s * vx + c * vy, vz])

    @property
    def speed(self) -> float:
        return float(np.linalg.norm(self.velocity))


@dataclass(frozen=True)
class VisualVariation:
    """Appearance of one episode (domain randomisation). Colours are RGB in [0, 1].

    The forest's own ground/foliage/trunk colours come from :class:`~.forest.Forest`; these
    multiply them (``*_tint``) so a season shift can recolour any forest.
    light_direction: vector pointing TOWARDS the light (world). ambient / diffuse in [0, 1].
    camera_pitch_offset: mount jitter (rad) added to ``QuadParams.camera_pitch``.
    """

    sky_color: tuple[float, float, float] = (0.62, 0.76, 0.92)
    ground_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    foliage_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    trunk_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    target_color: tuple[float, float, float] = (0.95, 0.15, 0.1)
    drone_color: tuple[float, float, float] = (0.15, 0.15, 0.18)
    light_direction: tuple[float, float, float] = (0.4, 0.3, 1.0)
    ambient: float = 0.6
    diffuse: float = 0.5
    camera_pitch_offset: float = 0.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> VisualVariation:
        """A random appearance: tints, sky, lighting and camera pitch jitter drawn from ``rng``."""

        def tint(amount: float) -> tuple[float, float, float]:
            scale = rng.uniform(1 - amount, 1 + amount)
            return rgb(np.clip(scale + d, 0.3, 1.6) for d in rng.uniform(-amount / 2, amount / 2, 3))

        azimuth = rng.uniform(-np.pi, np.pi)
        elevation = rng.uniform(0.5, 1.4)
        sky = np.clip(np.array([0.62, 0.76, 0.92]) * rng.uniform(0.85, 1.1) + rng.uniform(-0.06, 0.06, 3), 0, 1)
        return cls(
            sky_color=rgb(sky),
            ground_tint=tint(0.25),
            foliage_tint=tint(0.25),
            trunk_tint=tint(0.2),
            light_direction=(
                float(np.cos(elevation) * np.cos(azimuth)),
                float(np.cos(elevation) * np.sin(azimuth)),
                float(np.sin(elevation)),
            ),
            ambient=float(rng.uniform(0.45, 0.8)),
            diffuse=float(rng.uniform(0.3, 0.6)),
            camera_pitch_offset=float(rng.uniform(-0.04, 0.04)),
        )


@runtime_checkable
class DroneBackend(Protocol):
    """A physics + rendering backend for the drone-forest task (see the module docstring)."""

    visuals: VisualVariation
    """The appearance of the last :meth:`build` (camera pitch offset included)."""

    def build(self, forest: Forest, quad: QuadParams, visuals: VisualVariation, physics_dt: float) -> None:
        """Create (or recreate) the world: ground, all trunks+canopies as ONE body (or a few), the
        target marker (visual only), the quadrotor. ``physics_dt``: fixed physics step (s), e.g. 1/240."""
        ...

    def reset(self, state: DroneState) -> None:
        """Place the drone at ``state`` (pose, velocities); rotor thrusts 0; simulated time restarts at
        ``state.time``."""
        ...

    def set_rotor_thrusts(self, thrusts: np.ndarray) -> None:
        """Rotor thrusts [4] (N) in :data:`~.quad.ROTOR_NAMES` order, clipped to [0, max_rotor_thrust];
        held until the next call. The backend adds each rotor's yaw reaction torque."""
        ...

    def advance(self, duration: float) -> None:
        """Step physics for ``duration`` seconds (rounded to whole physics steps, at least one),
        applying thrusts, reaction torques and drag ``−linear_drag ⊙ R^T(v − wind)`` every step."""
        ...

    def drone_state(self) -> DroneState: ...

    def collided(self) -> bool:
        """True if the airframe touched a trunk, canopy or the ground since the last ``reset``."""
        ...

    def render_camera(self) -> np.ndarray:
        """The onboard camera frame: uint8 [image_height, image_width, 3] (64 × 128 by default)."""
        ...

    def render_chase(self, width: int, height: int) -> np.ndarray:
        """A third-person view from behind and above the drone: uint8 [height, width, 3]."""
        ...

    def set_wind(self, velocity: np.ndarray) -> None:
        """World-frame air velocity [3] (m/s) used by drag from now on; persists across resets."""
        ...

    def open_viewer(self) -> None:
        """Show the simulator's own interactive viewer (human render mode)."""
        ...

    def sync_viewer(self) -> None:
        """Bring the viewer up to date (no-op without a viewer)."""
        ...

    def close(self) -> None: ...


def make_backend(name: str) -> DroneBackend:
    """Instantiate backend ``name`` ("pybullet" or "mujoco"), importing its simulator only now."""
    if name not in BACKENDS:
        raise ValueError(f"unknown drone-forest backend {name!r}; choose one of {BACKENDS.names()}")
    try:
        backend_class = BACKENDS.get(name)
    except ModuleNotFoundError as exc:
        other = [n for n in BACKENDS.names() if n != name]
        raise RuntimeError(
            f"drone-forest backend {name!r} cannot be loaded ({exc}); install the missing package "
            f"or choose backend={other[0]!r}"
        ) from exc
    return backend_class()


def chase_camera(state: DroneState, distance: float = 3.0, height: float = 1.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eye, target, up) of a chase view ``distance`` m behind and ``height`` m above the drone,
    following its heading only (not roll/pitch)."""
    yaw = state.yaw
    forward = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    eye = state.position - distance * forward + np.array([0.0, 0.0, height])
    return eye, state.position + 1.5 * forward, np.array([0.0, 0.0, 1.0])

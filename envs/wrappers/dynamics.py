"""Dynamics shifts: wet road (friction), actuator delay, wind gusts, denser forests.

Each is a Gymnasium wrapper with severity 1..5 (tables below, index ``severity - 1``). Wrappers
that need a hook on the env (``env.unwrapped.set_friction_scale``, ``set_wind``,
``set_tree_density_scale``) check for it when constructed and raise ``ValueError`` naming the hook
and the envs that provide it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lnn_control.envs.wrappers.corruptions import check_severity
from lnn_control.envs.wrappers.image import stream_rng

#: Tyre–road friction scale for ``wet:s`` and for ``rain:s`` on ground vehicles (1 = dry): damp,
#: wet, standing water, slush, ice. See :class:`FrictionShift` for when the car actually feels it.
FRICTION_SCALE_BY_SEVERITY = (0.75, 0.55, 0.40, 0.25, 0.12)
#: Actuator delay in policy steps for ``delay:s`` (at the lane env's 20 Hz: 50 … 250 ms).
DELAY_STEPS_BY_SEVERITY = (1, 2, 3, 4, 5)
#: Wind for ``wind:s``: (mean horizontal speed m/s, gust standard deviation m/s).
WIND_BY_SEVERITY = ((1.0, 0.5), (2.0, 1.0), (3.0, 1.5), (4.5, 2.2), (6.0, 3.0))
#: Gust correlation time (s) of the Ornstein–Uhlenbeck gust process.
GUST_TIME_CONSTANT = 1.0
#: Tree density multiplier for ``dense:s`` (relative to the env's configured density).
DENSITY_SCALE_BY_SEVERITY = (1.25, 1.5, 1.75, 2.0, 2.5)


_REAL = (int, float, np.integer, np.floating)  # plain and NumPy numbers (bool excluded where used)

def require_hook(env: gym.Env, hook: str, condition: str, provided_by: str) -> Any:
    """Return ``env.unwrapped.<hook>`` or raise ``ValueError`` saying which envs provide it."""
    method = getattr(env.unwrapped, hook, None)
    if not callable(method):
        raise ValueError(
            f"condition {condition!r} needs env.unwrapped.{hook}(...), which "
            f"{type(env.unwrapped).__name__} does not provide; it is available on {provided_by}"
        )
    return method


def control_period(env: gym.Env) -> float:
    """Seconds per env step: ``env.unwrapped.control_dt`` if set, else 1 / ``metadata['render_fps']``."""
    dt = getattr(env.unwrapped, "control_dt", None)
    if isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0:
        return float(dt)
    fps = env.metadata.get("render_fps")
    if isinstance(fps, (int, float)) and fps > 0:
        return 1.0 / float(fps)
    raise ValueError(
        f"cannot tell the step period of {type(env.unwrapped).__name__}: give it a control_dt "
        "attribute (seconds) or metadata['render_fps']"
    )


class FrictionShift(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Scale tyre–road friction by ``scale`` in (0, 1] via ``env.unwrapped.set_friction_scale``.

    Applied at construction and again at every ``reset`` (in case the env rebuilds its world).

    Limitation: neither backend has a tyre-slip model. Contacts are Coulomb friction (PyBullet's
    rigid contact, MuJoCo's soft contact), which grip fully until the friction limit, so a wet road
    changes nothing until a bend needs more than ``tyre_friction × scale`` of lateral grip,
    i.e. ``v² / (g R)``. At the lane env's default 1.5 m/s on its tightest 2 m bends that is 0.115:
    ``wet:1..5`` (down to 0.12) leaves the expert's driving unchanged (measured, both backends,
    roads 1000–1001: mean |lateral offset| 4.6 mm PyBullet / 5.1 mm MuJoCo at every severity). At
    ``target_speed=3`` m/s (needs 0.46) the shift bites: the expert still succeeds at ``wet:1..3``
    but departs the lane at ``wet:4`` and ``wet:5`` on both backends. Evaluate wet roads at speed.
    """

    def __init__(self, env: gym.Env, scale: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale)
        gym.Wrapper.__init__(self, env)
        if not (isinstance(scale, _REAL) and not isinstance(scale, bool) and math.isfinite(scale) and 0 < scale <= 1):
            raise ValueError(f"friction scale must be in (0, 1] (1 = dry road), got {scale!r}")
        self._set = require_hook(env, "set_friction_scale", "wet", "lnn_control/LaneKeeping-v0 (both backends)")
        self.scale = float(scale)
        self._set(self.scale)

    @classmethod
    def from_severity(cls, env: gym.Env, severity: int) -> FrictionShift:
        return cls(env, FRICTION_SCALE_BY_SEVERITY[check_severity(severity) - 1])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._set(self.scale)
        return super().reset(seed=seed, options=options)


class ActionDelay(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Deliver each action ``steps`` env steps late (actuator / transport delay).

    The action returned by ``step`` at step ``t`` reaches the env at step ``t + steps``; during the
    first ``steps`` steps of an episode the env receives ``initial_action`` (default: zeros clipped
    to the action space, i.e. steering straight). The queue is cleared on ``reset``. The action
    given to ``step`` is validated against the space at once (not when it comes out of the queue).
    """

    def __init__(self, env: gym.Env, steps: int, initial_action: np.ndarray | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, steps=steps, initial_action=initial_action)
        gym.Wrapper.__init__(self, env)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"delay steps must be an integer ≥ 1, got {steps!r}")
        space = env.action_space
        if not isinstance(space, spaces.Box):
            raise ValueError(f"actuator delay needs a Box action space, got {space}")
        self._box: spaces.Box = space
        if initial_action is None:
            initial_action = np.clip(np.zeros(space.shape, space.dtype), space.low, space.high)
        initial_action = np.asarray(initial_action, dtype=space.dtype)
        if initial_action.shape != space.shape or not space.contains(initial_action):
            raise ValueError(f"initial_action {initial_action.tolist()} is not in the action space {space}")
        self.steps = int(steps)
        self.initial_action = initial_action
        self._queue: deque[np.ndarray] = deque()
        self._fill()

    @classmethod
    def from_severity(cls, env: gym.Env, severity: int) -> ActionDelay:
        return cls(env, DELAY_STEPS_BY_SEVERITY[check_severity(severity) - 1])

    def _fill(self) -> None:
        self._queue.clear()
        self._queue.extend(self.initial_action.copy() for _ in range(self.steps))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._fill()
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        space = self._box
        try:
            array = np.asarray(action, dtype=space.dtype)
        except (TypeError, ValueError):
            raise ValueError(f"action must be a numeric array of shape {space.shape}, got {action!r}") from None
        if array.shape != space.shape or not np.all(np.isfinite(array)):
            raise ValueError(f"action {action!r} must be finite with shape {space.shape}")
        if np.any(array < space.low - 1e-6) or np.any(array > space.high + 1e-6):
            raise ValueError(
                f"action {array.tolist()} is outside the action space [{space.low.tolist()}, {space.high.tolist()}]"
            )
        self._queue.append(array.copy())
        return self.env.step(self._queue.popleft())


class WindGusts(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Wind with gusts for the drone: before every step, ``env.unwrapped.set_wind(velocity)`` with
    ``velocity`` a float64 ``(3,)`` world-frame air velocity in m/s (x, y horizontal, z up).

    Mean wind: ``mean_speed`` m/s from a direction drawn per episode; gusts: an Ornstein–Uhlenbeck
    process (standard deviation ``gust_std`` m/s horizontally, a third of it vertically,
    correlation time :data:`GUST_TIME_CONSTANT` s) stepped with the env's control period. Seeded
    like the image wrappers (``reset(seed=...)``).
    """

    def __init__(self, env: gym.Env, mean_speed: float, gust_std: float, seed: int | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, mean_speed=mean_speed, gust_std=gust_std, seed=seed)
        gym.Wrapper.__init__(self, env)
        for label, value in (("mean_speed", mean_speed), ("gust_std", gust_std)):
            if not (isinstance(value, _REAL) and not isinstance(value, bool) and math.isfinite(value) and value >= 0):
                raise ValueError(f"wind {label} must be a finite number ≥ 0 m/s, got {value!r}")
        self._set = require_hook(env, "set_wind", "wind", "lnn_control/DroneForest-v0")
        self.mean_speed = float(mean_speed)
        self.gust_std = float(gust_std)
        self.dt = control_period(env)
        self._rng = stream_rng(seed, "wind")
        self._mean = np.zeros(3)
        self._gust = np.zeros(3)
        self.velocity = np.zeros(3)

    @classmethod
    def from_severity(cls, env: gym.Env, severity: int, seed: int | None = None) -> WindGusts:
        mean, gust = WIND_BY_SEVERITY[check_severity(severity) - 1]
        return cls(env, mean, gust, seed)

    def _std(self) -> np.ndarray:
        return self.gust_std * np.array([1.0, 1.0, 1.0 / 3.0])

    def _apply(self) -> None:
        self.velocity = self._mean + self._gust
        self._set(self.velocity.copy())

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = stream_rng(seed, "wind")
        heading = self._rng.uniform(-math.pi, math.pi)
        self._mean = self.mean_speed * np.array([math.cos(heading), math.sin(heading), 0.0])
        self._gust = self._rng.standard_normal(3) * self._std()
        result = super().reset(seed=seed, options=options)
        self._apply()
        return result

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        # exact OU discretisation: x ← a·x + σ·sqrt(1 − a²)·N(0, 1)
        a = math.exp(-self.dt / GUST_TIME_CONSTANT)
        self._gust = a * self._gust + math.sqrt(1.0 - a * a) * self._std() * self._rng.standard_normal(3)
        self._apply()
        return super().step(action)


class DenserForest(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Multiply the drone env's tree density by ``scale`` ≥ 1 via
    ``env.unwrapped.set_tree_density_scale(scale)``; takes effect from the next ``reset`` (forests
    are generated at reset)."""

    def __init__(self, env: gym.Env, scale: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale)
        gym.Wrapper.__init__(self, env)
        if not (isinstance(scale, _REAL) and not isinstance(scale, bool) and math.isfinite(scale) and scale >= 1):
            raise ValueError(f"tree density scale must be ≥ 1, got {scale!r}")
        self._set = require_hook(env, "set_tree_density_scale", "dense", "lnn_control/DroneForest-v0")
        self.scale = float(scale)
        self._set(self.scale)

    @classmethod
    def from_severity(cls, env: gym.Env, severity: int) -> DenserForest:
        return cls(env, DENSITY_SCALE_BY_SEVERITY[check_severity(severity) - 1])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._set(self.scale)
        return super().reset(seed=seed, options=options)

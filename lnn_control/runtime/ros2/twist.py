"""Our actions <-> ``geometry_msgs/Twist``: THE one place where an action vector meets ROS 2.

Frame: REP-103 ``base_link``: x forward, y left, z up; angular velocities about those axes,
counter-clockwise positive (a positive ``angular.z`` turns LEFT). Units: m/s and rad/s. Our
actions are written in :attr:`~lnn_control.spec.ActionFrame.FLU`, the same axes, so no axis flips
happen here; what happens is the car's kinematics.

**Car** (action names ``("steering",)``, ``("steering", "target_speed")`` or
``("steering", "throttle")``; all normalized to [-1, 1], steering +1 = full LEFT):

- speed v (m/s) -> ``linear.x``: ``target_speed`` a maps like the simulator's cruise target,
  v = (a + 1) / 2 · max_speed (so [0, max_speed]); ``throttle`` a maps linearly,
  v = a · max_speed (so [-max_speed, max_speed]; assumes the ESC's speed is proportional to
  throttle); without a speed component v = ``cruise_speed``.
- steering s -> ``angular.z`` = v · tan(δ) / L (kinematic bicycle model about the rear axle),
  δ = clip(s, -1, 1) · max_steering (rad), L = wheelbase (m). Other components are 0.

The inverse reads v = ``linear.x`` and δ = atan(L · ω_z / v), s = clip(δ / max_steering, -1, 1).
At |v| < ``min_speed`` (default 0.05 m/s) a yaw rate says nothing about the steering angle (a
parked car can hold any steering): the inverse gives **NaN** for steering there, meaning "not
observable"; callers decide (``dataset from-bag`` leaves such frames out and counts them). The
speed component of the inverse is clipped to the action's [-1, 1].

**Drone** (``("vx", "vy", "vz", "yaw_rate")``, m/s and rad/s in body FLU): 1:1,
``linear = (vx, vy, vz)``, ``angular = (0, 0, yaw_rate)``; the inverse ignores ``angular.x/y``.

**Stop** is the zero twist, ``Twist()``, for every vehicle; it is not the image of any "neutral"
action (a steering-only car's neutral action still means cruise speed), so send it directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lnn_control.spec import ActionFrame, ActionSpec

Vehicle = Literal["car", "drone"]

CAR_ACTIONS: tuple[tuple[str, ...], ...] = (
    ("steering",), ("steering", "target_speed"), ("steering", "throttle"),
)
"""The car action layouts this module maps (all components normalized)."""
DRONE_ACTIONS: tuple[str, ...] = ("vx", "vy", "vz", "yaw_rate")
"""The drone action layout (body FLU velocities in m/s, yaw rate in rad/s)."""
_UNITS = {"steering": "normalized", "target_speed": "normalized", "throttle": "normalized",
          "vx": "m/s", "vy": "m/s", "vz": "m/s", "yaw_rate": "rad/s"}


@dataclass(frozen=True)
class Twist:
    """A REP-103 body twist. linear: (x forward, y left, z up) in m/s; angular: rates about
    (x, y, z) in rad/s, counter-clockwise positive (``angular[2]`` > 0 turns left)."""

    linear: tuple[float, float, float] = (0.0, 0.0, 0.0)
    angular: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for label, vector in (("linear", self.linear), ("angular", self.angular)):
            if len(vector) != 3:
                raise ValueError(f"Twist.{label} must have 3 components (x, y, z), got {vector!r}")
            object.__setattr__(self, label, tuple(float(v) for v in vector))


@dataclass(frozen=True)
class CarTwistConfig:
    """The car's kinematics for the mapping (defaults: the 1/10 simulator car, ``CarParams`` and
    ``LaneKeepingEnv``'s default target speed).

    wheelbase: axle distance L (m). max_steering: front-wheel angle at steering ±1 (rad, < π/2).
    max_speed: speed at target_speed +1 / throttle +1 (m/s). cruise_speed: speed for a
    steering-only action (m/s). min_speed: below this |linear.x| (m/s) the inverse reports the
    steering as NaN (not observable from a yaw rate).
    """

    wheelbase: float = 0.30
    max_steering: float = 0.4
    max_speed: float = 3.0
    cruise_speed: float = 1.5
    min_speed: float = 0.05

    def __post_init__(self) -> None:
        for name in ("wheelbase", "max_steering", "max_speed", "min_speed"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"CarTwistConfig.{name} must be a finite number > 0, got {value!r}")
        if not self.max_steering < math.pi / 2:
            raise ValueError(f"CarTwistConfig.max_steering must be < pi/2 rad, got {self.max_steering}")
        if not (math.isfinite(self.cruise_speed) and abs(self.cruise_speed) <= self.max_speed):
            raise ValueError(
                f"CarTwistConfig.cruise_speed must be within ±max_speed ({self.max_speed} m/s), got {self.cruise_speed!r}"
            )


def vehicle_of(names: Sequence[str]) -> Vehicle:
    """``"car"`` or ``"drone"`` for an action layout; ValueError naming the layouts allowed."""
    layout = tuple(names)
    if layout in CAR_ACTIONS:
        return "car"
    if layout == DRONE_ACTIONS:
        return "drone"
    allowed = [list(a) for a in (*CAR_ACTIONS, DRONE_ACTIONS)]
    raise ValueError(f"actions {list(layout)} have no Twist mapping; mapped layouts: {allowed}")


def check_action_spec(spec: ActionSpec) -> Vehicle:
    """Check that ``spec`` can be sent as a Twist (frame FLU, a mapped layout, the units this
    module assumes); returns the vehicle kind. ValueError names what differs."""
    if spec.frame != ActionFrame.FLU:
        raise ValueError(
            f"action frame {None if spec.frame is None else spec.frame.value!r} cannot be sent as a ROS 2 Twist: "
            "only 'flu' actions map to REP-103 base_link; re-save the bundle with frame 'flu'"
        )
    vehicle = vehicle_of(spec.names)
    expected = tuple(_UNITS[name] for name in spec.names)
    if tuple(spec.units) != expected:
        raise ValueError(f"actions {list(spec.names)} have units {list(spec.units)}; the Twist mapping needs {list(expected)}")
    return vehicle


def _car_speed(action: np.ndarray, names: tuple[str, ...], car: CarTwistConfig) -> float:
    if len(names) == 1:
        return car.cruise_speed
    value = float(np.clip(action[1], -1.0, 1.0))
    if names[1] == "target_speed":
        return (value + 1.0) / 2.0 * car.max_speed
    return value * car.max_speed


def twist_from_action(action: np.ndarray | Sequence[float], names: Sequence[str],
                      car: CarTwistConfig | None = None) -> Twist:
    """Action vector [A] (in ``names`` order, FLU) -> :class:`Twist` (see the module docstring).

    Car components are clipped to [-1, 1] first. ValueError for an unmapped layout, a wrong length
    or a non-finite value."""
    layout = tuple(names)
    vehicle = vehicle_of(layout)
    values = np.asarray(action, np.float64).reshape(-1)
    if values.size != len(layout):
        raise ValueError(f"action has {values.size} components but the layout {list(layout)} has {len(layout)}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"action {values.tolist()} is not finite; a Twist carries finite velocities only")
    if vehicle == "drone":
        vx, vy, vz, yaw_rate = (float(v) for v in values)
        return Twist((vx, vy, vz), (0.0, 0.0, yaw_rate))
    car = car or CarTwistConfig()
    speed = _car_speed(values, layout, car)
    delta = float(np.clip(values[0], -1.0, 1.0)) * car.max_steering
    return Twist((speed, 0.0, 0.0), (0.0, 0.0, speed * math.tan(delta) / car.wheelbase))


def action_from_twist(twist: Twist, names: Sequence[str], car: CarTwistConfig | None = None) -> np.ndarray:
    """:class:`Twist` -> action float32 [A] in ``names`` order (the inverse of
    :func:`twist_from_action`). Car: steering is NaN when |linear.x| < ``min_speed`` (not
    observable); the speed component is clipped to [-1, 1]."""
    layout = tuple(names)
    if vehicle_of(layout) == "drone":
        return np.array([*twist.linear, twist.angular[2]], np.float32)
    car = car or CarTwistConfig()
    speed = twist.linear[0]
    if abs(speed) < car.min_speed:
        steering = math.nan
    else:
        delta = math.atan(car.wheelbase * twist.angular[2] / speed)
        steering = float(np.clip(delta / car.max_steering, -1.0, 1.0))
    out = [steering]
    if len(layout) == 2:
        if layout[1] == "target_speed":
            out.append(2.0 * speed / car.max_speed - 1.0)
        else:
            out.append(speed / car.max_speed)
        out[1] = float(np.clip(out[1], -1.0, 1.0))
    return np.array(out, np.float32)

"""Observation and action specifications shared by envs, policies and robots.

A policy bundle records the specs it was trained with; an env or robot states the specs it
provides. :func:`check_compatible` compares them and says exactly what differs.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class ActionFrame(str, enum.Enum):
    """The convention an action vector is written in. Stated once here; every env, bundle and robot
    names it in its :class:`ActionSpec`, and each robot converts it to its wire format in one place.

    ``FLU``: the vehicle's level heading frame, x forward, y left, z up (REP-103 body axes, yaw only);
    turning commands are counter-clockwise-positive seen from above, so ``steering`` +1 and a
    positive ``yaw_rate`` turn LEFT. Both simulators (lane car, drone) act in this frame.
    MAVLink BODY_NED (forward, right, down; yaw clockwise-positive) is
    ``(vx, -vy, -vz, -yaw_rate)`` of it; the serial car's wire steering (+ = right) is ``-steering``.
    """

    FLU = "flu"


@dataclass(frozen=True)
class ActionSpec:
    """A bounded continuous action vector.

    names: one name per component, e.g. ``("steering",)`` or ``("vx", "vy", "vz", "yaw_rate")``.
    low / high: bounds per component, in ``units``.
    units: per component, e.g. ``("normalized",)`` or ``("m/s", "m/s", "m/s", "rad/s")``.
    frame: the :class:`ActionFrame` the components are written in; ``None`` = not stated (a generic
        env, or a bundle saved before frames were recorded: no hardware robot accepts it).
    """

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    units: tuple[str, ...]
    frame: ActionFrame | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0:
            raise ValueError("ActionSpec.names must name at least one action component")
        for label, values in (("low", self.low), ("high", self.high), ("units", self.units)):
            if len(values) != n:
                raise ValueError(
                    f"ActionSpec.{label} has {len(values)} entries but names has {n}: {self.names}"
                )
        for name, lo, hi in zip(self.names, self.low, self.high):
            if not lo < hi:
                raise ValueError(f"ActionSpec bound for '{name}': low={lo} must be < high={hi}")
        if self.frame is not None:
            try:  # a plain string (from JSON) is accepted where the enum is expected
                object.__setattr__(self, "frame", ActionFrame(self.frame))
            except ValueError:
                raise ValueError(
                    f"ActionSpec.frame {self.frame!r} is not a known frame; allowed: "
                    f"{[f.value for f in ActionFrame]} or null (not stated)"
                ) from None

    @property
    def size(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {k: list(getattr(self, k)) for k in ("names", "low", "high", "units")}
        data["frame"] = None if self.frame is None else self.frame.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionSpec:
        return cls(**{k: tuple(data[k]) for k in ("names", "low", "high", "units")}, frame=data.get("frame"))


@dataclass(frozen=True)
class ObservationSpec:
    """A camera image plus optional named scalar measurements.

    image_shape: (height, width, channels) of the uint8 RGB frame, in pixels.
    extras: names of scalar measurements fed next to the image, e.g. ``("speed",)``.
    extra_units: one unit per extra, e.g. ``("m/s",)``.
    """

    image_shape: tuple[int, int, int]
    extras: tuple[str, ...] = field(default_factory=tuple)
    extra_units: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.image_shape) != 3 or any(int(d) <= 0 for d in self.image_shape):
            raise ValueError(
                f"ObservationSpec.image_shape must be (height, width, channels) > 0, got {self.image_shape}"
            )
        if self.image_shape[2] != 3:
            raise ValueError(f"ObservationSpec.image_shape must have 3 (RGB) channels, got {self.image_shape}")
        if len(self.extras) != len(self.extra_units):
            raise ValueError(
                f"ObservationSpec.extras {self.extras} and extra_units {self.extra_units} differ in length"
            )

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObservationSpec:
        height, width, channels = (int(v) for v in data["image_shape"])
        return cls(
            image_shape=(height, width, channels),
            extras=tuple(data.get("extras", ())),
            extra_units=tuple(data.get("extra_units", ())),
        )


def check_compatible(
    expected: ObservationSpec | ActionSpec,
    provided: ObservationSpec | ActionSpec,
    what: str,
) -> None:
    """Raise ``ValueError`` listing each field where ``provided`` differs from ``expected``.

    For simulators: a policy whose action frame is not stated (``None``, a bundle saved before
    frames were recorded, all trained in the FLU simulators) fits any frame here. Hardware robots
    check frames strictly (``lnn_control.runtime.session.check_robot_matches_policy``)."""
    if type(expected) is not type(provided):
        raise ValueError(f"{what}: cannot compare {type(expected).__name__} with {type(provided).__name__}")
    def comparable(value: Any) -> Any:
        return tuple(value) if isinstance(value, list | tuple) else value

    diffs = [
        f"{key}: policy expects {value}, got {getattr(provided, key)}"
        for key, value in asdict(expected).items()
        if comparable(value) != comparable(getattr(provided, key)) and not (key == "frame" and value is None)
    ]
    if diffs:
        raise ValueError(f"{what} does not match the policy: " + "; ".join(diffs))

"""Bind input controls to a robot's actions: gamepad axes -> action values, keys -> action steps.

Both resolvers check the launch file's ``teleop`` section against the robot's action names and
raise ValueError naming the key to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lnn_control.runtime.inputs.config import (
    ARROW_ALIAS,
    DEFAULT_KEYS,
    SPARE_KEY_PAIRS,
    AxisBinding,
    GamepadConfig,
    KeyboardConfig,
)
from lnn_control.runtime.inputs.evdev_events import ABS_CODES
from lnn_control.spec import ActionSpec


@dataclass(frozen=True)
class AxisMap:
    """One action's axis: raw range, and the action's bounds (action units)."""

    action: str
    index: int
    code: int
    binding: AxisBinding
    raw_min: int
    raw_max: int
    low: float
    high: float

    def deflection(self, raw: int | None) -> float:
        """Raw axis value -> deflection in [-1, 1] (stick) / [0, 1] (trigger), after dead zone and invert;
        None (never reported) reads as rest."""
        if raw is None:
            return 0.0
        span = float(self.raw_max - self.raw_min)
        if self.binding.kind == "trigger":
            n = float(np.clip((raw - self.raw_min) / span, 0.0, 1.0))
        else:
            n = float(np.clip((raw - (self.raw_min + self.raw_max) / 2.0) / (span / 2.0), -1.0, 1.0))
        dz = self.binding.deadzone
        n = 0.0 if abs(n) <= dz else float(np.sign(n)) * (abs(n) - dz) / (1.0 - dz)
        return -n if self.binding.invert else n

    def value(self, raw: int | None) -> float:
        """Raw axis value -> action value (units of the action), inside its bounds."""
        n = self.deflection(raw)
        if self.binding.scale is not None:
            v = n * self.binding.scale
        else:
            v = n * (self.high if n > 0 else -self.low)
        return float(np.clip(v, self.low, self.high))

    def raw_for(self, value: float) -> int:
        """The raw axis reading that :meth:`value` maps to ``value`` (action units, clipped to the
        reachable range): the inverse, for a program that drives the input path like a hand would."""
        if self.binding.scale is not None:
            n = value / self.binding.scale
        else:
            n = value / self.high if value > 0 else (value / -self.low if value < 0 else 0.0)
        n = -n if self.binding.invert else n
        lowest = 0.0 if self.binding.kind == "trigger" else -1.0
        n = float(np.clip(n, lowest, 1.0))
        dz = self.binding.deadzone
        n = 0.0 if n == 0.0 else float(np.sign(n)) * (abs(n) * (1.0 - dz) + dz)
        span = float(self.raw_max - self.raw_min)
        if self.binding.kind == "trigger":
            raw = self.raw_min + n * span
        else:
            raw = (self.raw_min + self.raw_max) / 2.0 + n * span / 2.0
        return int(np.clip(round(raw), self.raw_min, self.raw_max))


def resolve_axes(
    config: GamepadConfig, action_spec: ActionSpec, device_ranges: dict[int, tuple[int, int]]
) -> list[AxisMap]:
    """One :class:`AxisMap` per action, in the action order. ``device_ranges``: raw (min, max) per
    axis code as the device reports them (empty for a recorded stream)."""
    names = list(action_spec.names)
    unknown = sorted(set(config.axes) - set(names))
    if unknown:
        raise ValueError(
            f"teleop.gamepad.axes names {unknown}, but the robot's actions are {names}; remove them or rename"
        )
    bindings = config.bindings()
    maps: list[AxisMap] = []
    owner: dict[int, str] = {}
    for index, name in enumerate(names):
        binding = bindings.get(name)
        if binding is None:
            raise ValueError(
                f"action {name!r} has no gamepad axis (mapping {config.mapping!r} binds "
                f"{sorted(bindings) or 'nothing'}): add teleop.gamepad.axes.{name}: {{code: ABS_X}}"
            )
        where = f"teleop.gamepad.axes.{name}"
        binding.check(where)
        code = ABS_CODES[binding.code]
        if code in owner:
            raise ValueError(f"{where}.code is {binding.code}, already driving action {owner[code]!r}; choose another axis")
        owner[code] = name
        raw = binding.range or device_ranges.get(code) or config.stream_range
        if raw is None:
            raise ValueError(
                f"{where}: the device reports no range for {binding.code} (a recorded stream, or the pad lacks "
                f"that axis); set {where}.range: [min, max] (or teleop.gamepad.stream_range for every axis) "
                "or bind another axis"
            )
        maps.append(AxisMap(name, index, code, binding, int(raw[0]), int(raw[1]),
                            float(action_spec.low[index]), float(action_spec.high[index])))
    return maps


def resolve_keys(config: KeyboardConfig, action_spec: ActionSpec) -> dict[str, tuple[int, float]]:
    """key character -> (action index, +1 or -1). Arrow keys are aliases of w, s, a, d."""
    names = list(action_spec.names)
    unknown = sorted(set(config.axes) - set(names))
    if unknown:
        raise ValueError(
            f"teleop.keyboard.axes names {unknown}, but the robot's actions are {names}; remove them or rename"
        )
    pairs: dict[str, tuple[str, str]] = {}
    for name in names:
        if name in config.axes:
            up, down = config.axes[name]
            pairs[name] = (ARROW_ALIAS.get(up, up), ARROW_ALIAS.get(down, down))
        elif name in DEFAULT_KEYS:
            pairs[name] = DEFAULT_KEYS[name]
    for name in names:
        if name not in pairs:
            taken = {key for pair in pairs.values() for key in pair}
            free = [pair for pair in SPARE_KEY_PAIRS if not taken & set(pair)]
            if not free:
                raise ValueError(f"no free keys left for action {name!r}: set teleop.keyboard.axes.{name}: [KEY, KEY]")
            pairs[name] = free[0]
    keys: dict[str, tuple[int, float]] = {}
    for index, name in enumerate(names):
        for key, sign in zip(pairs[name], (1.0, -1.0)):
            if key in keys:
                other = names[keys[key][0]]
                raise ValueError(
                    f"key {key!r} would drive both {other!r} and {name!r}: set teleop.keyboard.axes.{name} to other keys"
                )
            keys[key] = (index, sign)
    return keys

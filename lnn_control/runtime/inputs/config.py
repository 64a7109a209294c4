"""The launch file's ``teleop:`` section: keyboard keys, gamepad axes and buttons, the shipped Xbox mapping.

Example (every key optional; these are the defaults, plus one override)::

    teleop:
      image_shape: null               # hardware camera frames (height, width); null: the policy's size
      status_interval_s: 1.0          # status line period, seconds
      keyboard: {step: 0.1, hold_s: 0.5, axes: {steering: [a, d]}}
      gamepad:
        device: null                  # /dev/input/eventN, a name substring, or null: the first pad found
        mapping: xbox                 # shipped axes (see XBOX_AXES), or none: only `axes` below
        axes:
          steering: {code: ABS_X, invert: true, deadzone: 0.08}
        deadman: BTN_TL               # hold to drive (teleop); released => stop
        takeover: BTN_TR              # hold to take over from the policy (run --takeover gamepad)
        estop: BTN_EAST               # latches the e-stop
        quit: BTN_START               # ends the run

Validation is strict: an unknown key, an axis or button name the kernel does not define, a control
used twice or a value out of range raises an error naming the key (``teleop.gamepad.deadman``) and
what is allowed. Axes and keys are checked against the robot's action names when the device is bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from lnn_control.runtime.inputs.evdev_events import ABS_CODES, BUTTON_CODES

ARROW_KEYS = ("up", "down", "left", "right")
"""Arrow keys act as ``w``, ``s``, ``a``, ``d``."""
ARROW_ALIAS = {"up": "w", "down": "s", "left": "a", "right": "d"}
RESERVED_KEYS = {"q": "quit", "e": "e-stop", " ": "stop/zero", "space": "stop/zero", "h": "hold"}
DEFAULT_KEYS: dict[str, tuple[str, str]] = {
    "steering": ("a", "d"),  # + = left (FLU)
    "throttle": ("w", "s"),
    "vx": ("w", "s"),  # forward
    "vy": ("a", "d"),  # + = left
    "vz": ("r", "f"),  # + = up
    "yaw_rate": ("j", "l"),  # + = counter-clockwise (left)
}
"""Keyboard ``[increase, decrease]`` keys by action name; other actions take the next free pair of
:data:`SPARE_KEY_PAIRS`."""
SPARE_KEY_PAIRS = (("w", "s"), ("a", "d"), ("r", "f"), ("j", "l"), ("i", "k"), ("u", "o"))


def _check_key(key: str, where: str) -> str:
    if key in ARROW_KEYS:
        return ARROW_ALIAS[key]
    if len(key) != 1 or not key.isprintable() or key.isspace() or key.isupper():
        raise ValueError(
            f"{where} is {key!r}; a key is one lower-case printable character or one of {list(ARROW_KEYS)}"
        )
    if key in RESERVED_KEYS:
        raise ValueError(f"{where} is {key!r}, which is the {RESERVED_KEYS[key]} key; choose another")
    return key


@dataclass(frozen=True)
class KeyboardConfig:
    """Terminal keyboard.

    step: change of an action per key press, as a fraction of its half range ((high - low) / 2).
    hold_s: dead-man window, seconds: the command is live while keys keep arriving within it (a held
        key repeats); after ``hold_s`` without a key the robot gets the stop command. Must exceed the
        terminal's autorepeat delay (X11 default 0.66 s: ``xset r rate 250 30`` makes it 0.25 s).
    axes: action name -> ``[increase key, decrease key]``, overriding :data:`DEFAULT_KEYS`.
    """

    step: float = 0.1
    hold_s: float = 0.5
    axes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step) and 0 < self.step <= 1):
            raise ValueError(f"teleop.keyboard.step is {self.step!r}; allowed: a fraction in (0, 1]")
        if not (math.isfinite(self.hold_s) and 0.05 <= self.hold_s <= 5):
            raise ValueError(f"teleop.keyboard.hold_s is {self.hold_s!r} s; allowed: 0.05 to 5 s")
        seen: dict[str, str] = {}
        for action, pair in self.axes.items():
            if len(pair) != 2:
                raise ValueError(f"teleop.keyboard.axes.{action} must be [increase key, decrease key], got {pair!r}")
            for i, key in enumerate(pair):
                where = f"teleop.keyboard.axes.{action}[{i}]"
                name = _check_key(key, where)
                if name in seen:
                    raise ValueError(f"{where} is {key!r}, already bound to {seen[name]}")
                seen[name] = where


@dataclass(frozen=True)
class AxisBinding:
    """One action driven by one absolute axis.

    code: kernel axis name (``ABS_X``, ``ABS_RY``, ... see ``evdev_events.ABS_CODES``).
    kind: ``stick`` rests at the centre and reads -1..1; ``trigger`` rests at its minimum and reads 0..1.
    invert: flip the sign (sticks report + for right and DOWN; FLU wants + for left and forward).
    scale: action units at full deflection (null: the action's bound on that side).
    deadzone: fraction of deflection around rest that reads 0, in [0, 0.5).
    range: raw [min, max] of the axis (null: the device's own; required for a recorded stream).
    """

    code: str
    kind: Literal["stick", "trigger"] = "stick"
    invert: bool = False
    scale: float | None = None
    deadzone: float = 0.1
    range: tuple[int, int] | None = None

    def check(self, where: str) -> None:
        """Raise ValueError naming ``where`` (the binding's key path) if a value is out of range."""
        if self.code not in ABS_CODES:
            raise ValueError(f"{where}.code is {self.code!r}, not an absolute axis; allowed: {sorted(ABS_CODES)}")
        if self.kind not in ("stick", "trigger"):
            raise ValueError(f"{where}.kind is {self.kind!r}; allowed: stick, trigger")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"{where}.scale is {self.scale!r}; allowed: > 0 action units, or null (the action's bound)")
        if not (math.isfinite(self.deadzone) and 0 <= self.deadzone < 0.5):
            raise ValueError(f"{where}.deadzone is {self.deadzone!r}; allowed: [0, 0.5)")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"{where}.range is {list(self.range)}; allowed: [min, max] with min < max")


XBOX_AXES: dict[str, AxisBinding] = {
    # car: left stick steers, right stick's vertical is the throttle
    "steering": AxisBinding("ABS_X", invert=True),
    "throttle": AxisBinding("ABS_RY", invert=True),
    # drone, RC "mode 2": left stick = climb / yaw, right stick = forward / sideways
    "vx": AxisBinding("ABS_RY", invert=True),
    "vy": AxisBinding("ABS_RX", invert=True),
    "vz": AxisBinding("ABS_Y", invert=True),
    "yaw_rate": AxisBinding("ABS_X", invert=True),
}
"""The shipped mapping for an Xbox-style pad (Linux ``xpad`` / ``xpadneo`` drivers, and most pads in
XInput mode), by action name; only the robot's actions are used."""
MAPPINGS: dict[str, dict[str, AxisBinding]] = {"xbox": XBOX_AXES, "none": {}}


@dataclass(frozen=True)
class GamepadConfig:
    """An evdev gamepad (Linux). Buttons by kernel name (``BTN_TL`` = left bumper, ``BTN_TR`` = right
    bumper, ``BTN_SOUTH``/``BTN_EAST``/``BTN_NORTH``/``BTN_WEST`` = A/B/X/Y on an Xbox pad).

    device: ``/dev/input/eventN`` (or a ``/dev/input/by-id`` link), a substring of the device name, a
        FIFO or file carrying ``input_event`` records, or null: the first device with every mapped
        axis and the dead-man button.
    mapping: shipped axes by action name (``xbox``: :data:`XBOX_AXES`) or ``none``.
    axes: action name -> :class:`AxisBinding`, overriding the mapping's binding for that action.
    deadman / takeover: held => drive (teleop) / take over from the policy (takeover mode).
    estop: latches the e-stop; quit: ends the run (null: no such button).
    grab: claim the device exclusively (no other program sees its events while we run).
    stream_range: raw [min, max] of every axis without its own ``range`` when the device is a FIFO or
        file of records (which cannot report ranges), e.g. [-32768, 32767] for an Xbox pad's sticks.
    """

    device: str | None = None
    mapping: Literal["xbox", "none"] = "xbox"
    axes: dict[str, AxisBinding] = field(default_factory=dict)
    deadman: str = "BTN_TL"
    takeover: str = "BTN_TR"
    estop: str | None = "BTN_EAST"
    quit: str | None = "BTN_START"
    grab: bool = True
    stream_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.stream_range is not None and not self.stream_range[0] < self.stream_range[1]:
            raise ValueError(f"teleop.gamepad.stream_range is {list(self.stream_range)}; allowed: [min, max] with min < max")
        if self.mapping not in MAPPINGS:
            raise ValueError(f"teleop.gamepad.mapping is {self.mapping!r}; allowed: {sorted(MAPPINGS)}")
        for action, binding in self.axes.items():
            binding.check(f"teleop.gamepad.axes.{action}")
        used: dict[int, str] = {}
        for name in ("deadman", "takeover", "estop", "quit"):
            button = getattr(self, name)
            if button is None and name in ("deadman", "takeover"):
                raise ValueError(f"teleop.gamepad.{name} must name a button, e.g. BTN_TL")
            if button is None:
                continue
            if button not in BUTTON_CODES:
                raise ValueError(
                    f"teleop.gamepad.{name} is {button!r}, not a gamepad button; allowed: {sorted(BUTTON_CODES)}"
                )
            code = BUTTON_CODES[button]
            if code in used:
                raise ValueError(f"teleop.gamepad.{name} is {button!r}, the same button as teleop.gamepad.{used[code]}")
            used[code] = name

    def bindings(self) -> dict[str, AxisBinding]:
        """The shipped mapping with ``axes`` laid over it, by action name."""
        return {**MAPPINGS[self.mapping], **self.axes}


@dataclass(frozen=True)
class TeleopConfig:
    """Teleoperation and takeover (launch-file ``teleop:`` section).

    image_shape: (height, width) hardware cameras deliver in ``teleop`` (null: the launch file's
        policy's image size; simulators render their own). status_interval_s: status line period.
    """

    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)
    image_shape: tuple[int, int] | None = None
    status_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.image_shape is not None and min(self.image_shape) < 1:
            raise ValueError(f"teleop.image_shape is {list(self.image_shape)}; allowed: [height, width] >= 1 pixel")
        if not (math.isfinite(self.status_interval_s) and self.status_interval_s > 0):
            raise ValueError(f"teleop.status_interval_s is {self.status_interval_s!r}; allowed: > 0 seconds")

"""Small helpers every task env and simulator backend shares (no simulator imported here).

- :func:`config_from`: a typed config from ``None`` / an instance / a mapping of its fields;
- :func:`check_render_size`: the one rule for requested frame sizes (pixels);
- :func:`wrap_angle`: angles to (-π, π] (rad);
- :func:`require_display`: a viewer needs a display, said before the simulator would abort;
- :class:`BoundedCache`: generated worlds (roads, forests) kept per seed, a few at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from lnn_control.config import load_dataclass

MAX_RENDER_SIZE = (1920, 1080)
"""Largest (width, height) in pixels any backend renders (MuJoCo's offscreen buffer limit)."""

ConfigT = TypeVar("ConfigT")
KeyT = TypeVar("KeyT", bound=Hashable)
ValueT = TypeVar("ValueT")


def config_from(cls: type[ConfigT], value: Any, name: str, owner: str) -> ConfigT:
    """``cls()`` for ``None``, ``value`` if it already is a ``cls``, else ``cls`` loaded strictly from
    a mapping (unknown keys are errors naming ``owner(name=...)``)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        loaded: ConfigT = load_dataclass(cls, value, source=f"{owner}({name}=...)")
        return loaded
    raise ValueError(f"{owner}: {name} must be a {cls.__name__} or a mapping of its fields, got {type(value).__name__}")


def check_render_size(width: Any, height: Any, what: str = "render_chase") -> None:
    """Raise ``ValueError`` unless ``width`` × ``height`` are positive ints within :data:`MAX_RENDER_SIZE`."""
    valid = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (width, height))
    if not valid:
        raise ValueError(f"{what} needs positive int width/height in pixels, got {width!r}x{height!r}")
    if width > MAX_RENDER_SIZE[0] or height > MAX_RENDER_SIZE[1]:
        raise ValueError(
            f"{what} size {width}x{height} exceeds the largest frame {MAX_RENDER_SIZE[0]}x{MAX_RENDER_SIZE[1]}"
        )


def rgb(values: Any) -> tuple[float, float, float]:
    """Three numbers (an RGB colour, a direction) as a tuple of Python floats."""
    r, g, b = (float(v) for v in values)
    return r, g, b


def wrap_angle(angle: float) -> float:
    """Wrap an angle (rad) to (-π, π]."""
    return float(-((-angle + np.pi) % (2 * np.pi) - np.pi))


def require_display(simulator: str) -> None:
    """Raise ``RuntimeError`` when no display is reachable for ``simulator``'s viewer window (PyBullet's
    GUI would kill the whole process instead of raising)."""
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RuntimeError(
            f"the {simulator} viewer needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set); run on a "
            "desktop or over ssh -X, or use render_mode='rgb_array' to get chase-camera frames instead"
        )


class BoundedCache(Generic[KeyT, ValueT]):
    """Values made on first use and kept per key; emptied when it would hold more than ``capacity``."""

    def __init__(self, make: Callable[[KeyT], ValueT], capacity: int = 16) -> None:
        self._make = make
        self._capacity = capacity
        self._values: dict[KeyT, ValueT] = {}

    def get(self, key: KeyT) -> ValueT:
        if key not in self._values:
            if len(self._values) > self._capacity:
                self._values.clear()
            self._values[key] = self._make(key)
        return self._values[key]


@dataclass(frozen=True)
class StepOutcome:
    """What a task's rules say about one control step: reward, whether the episode ended
    (terminated: failure or success by the task; truncated: time limit / end of the world), and the
    step's info dict."""

    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]

"""``apply_conditions(env, "rain:3+noise:2", seed)``: wrap an env with the spec's domain shifts.

Order (innermost first): dynamics shifts (friction, tree density, wind, actuator delay), then
the image corruptions in the order the spec lists them, then camera timing (``framedrop``: it
drops and delays the frames as the camera would deliver them, corruptions included). ``rain:s`` is weather, not only a camera
effect: on envs with ``set_friction_scale`` (ground vehicles) it also wets the road with the
friction scale of ``wet:s``; on envs without it (the drone) rain is visual only. With both
``rain`` and ``wet`` the lower friction scale wins.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym

from lnn_control.envs.wrappers.dynamics import (
    FRICTION_SCALE_BY_SEVERITY,
    ActionDelay,
    DenserForest,
    FrictionShift,
    WindGusts,
)
from lnn_control.envs.wrappers.image import CorruptImage
from lnn_control.envs.wrappers.spec import Condition, parse_conditions
from lnn_control.envs.wrappers.timing import FrameDrop


def _conditions(spec: str | Sequence[Condition]) -> list[Condition]:
    if isinstance(spec, str):
        return parse_conditions(spec)
    conditions = list(spec)
    for c in conditions:
        if not isinstance(c, Condition):
            raise ValueError(f"conditions must be a spec string or Condition objects, got {c!r}")
    names = [c.name for c in conditions]
    if len(set(names)) != len(names):
        raise ValueError(f"each condition may appear once, got {names}")
    return conditions


def friction_scale_for(conditions: Sequence[Condition], env: gym.Env) -> float | None:
    """The friction scale the conditions ask for on ``env`` (None = leave friction alone)."""
    has_hook = callable(getattr(env.unwrapped, "set_friction_scale", None))
    scales = [
        FRICTION_SCALE_BY_SEVERITY[c.severity - 1]
        for c in conditions
        if c.name == "wet" or (c.name == "rain" and has_hook)
    ]
    return min(scales) if scales else None


def apply_conditions(env: gym.Env, spec: str | Sequence[Condition], seed: int | None = None) -> gym.Env:
    """Return ``env`` wrapped with every condition of ``spec`` (``"clean"`` returns ``env`` itself).

    ``seed`` seeds the wrappers' generators until the first ``reset(seed=...)``, which re-seeds
    them from that seed: same reset seed ⇒ same corrupted frames, gusts and delays.
    """
    conditions = _conditions(spec)
    by_name = {c.name: c for c in conditions}
    scale = friction_scale_for(conditions, env)
    if scale is not None:
        env = FrictionShift(env, scale)
    if "dense" in by_name:
        env = DenserForest.from_severity(env, by_name["dense"].severity)
    if "wind" in by_name:
        env = WindGusts.from_severity(env, by_name["wind"].severity, seed=seed)
    if "delay" in by_name:
        env = ActionDelay.from_severity(env, by_name["delay"].severity)
    for c in conditions:
        if c.is_image:
            env = CorruptImage(env, c.name, c.severity, seed=seed)
    if "framedrop" in by_name:
        env = FrameDrop.from_severity(env, by_name["framedrop"].severity, seed=seed)
    return env

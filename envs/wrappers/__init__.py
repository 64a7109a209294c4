"""Domain shift for the envs: image corruptions and dynamics shifts with severity 1..5.

- :mod:`.corruptions`: pure functions ``corrupt(image uint8 (H, W, 3), severity, rng) -> uint8``
  (rain, fog, night, glare, noise, impulse, blur, occlusion, jpeg, season, brightness, contrast)
  with their severity tables.
- :mod:`.spec`: spec strings ``"rain:3+noise:2"`` ↔ ``Condition(name, severity)``.
- :mod:`.image` / :mod:`.dynamics`: the Gymnasium wrappers (camera corruption; wet road, actuator
  delay, wind gusts, denser forest).
- :mod:`.timing`: camera timing (``framedrop``: dropped and late frames, delivery flags in ``info``).
- :mod:`.compose`: ``apply_conditions(env, spec, seed)``.
- :mod:`.contact_sheet`: the per-condition × severity example grid (``lnn-control conditions``).

No torch, no simulator imports.
"""

from lnn_control.envs.wrappers.compose import apply_conditions
from lnn_control.envs.wrappers.corruptions import CORRUPTIONS, SEVERITIES, Corruption, corrupt
from lnn_control.envs.wrappers.dynamics import ActionDelay, DenserForest, FrictionShift, WindGusts
from lnn_control.envs.wrappers.image import CorruptImage
from lnn_control.envs.wrappers.spec import (
    CONDITION_NAMES,
    DYNAMICS_CONDITIONS,
    Condition,
    format_conditions,
    parse_conditions,
)
from lnn_control.envs.wrappers.timing import FrameDrop

__all__ = [
    "CONDITION_NAMES",
    "CORRUPTIONS",
    "DYNAMICS_CONDITIONS",
    "SEVERITIES",
    "ActionDelay",
    "Condition",
    "CorruptImage",
    "Corruption",
    "DenserForest",
    "FrameDrop",
    "FrictionShift",
    "WindGusts",
    "apply_conditions",
    "corrupt",
    "format_conditions",
    "parse_conditions",
]

"""Condition spec strings: ``"rain:3+noise:2"`` → ``[Condition("rain", 3), Condition("noise", 2)]``.

Grammar: ``clean`` (no shift) or ``name:severity`` terms joined by ``+``; severity is an integer
1..5; names are those in :data:`CONDITION_NAMES`; each name at most once. Whitespace around terms
is ignored, names are case-insensitive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lnn_control.envs.wrappers.corruptions import CORRUPTIONS

#: Dynamics-level conditions and what they do (severity tables in :mod:`.dynamics`).
DYNAMICS_CONDITIONS: dict[str, str] = {
    "wet": "wet road: tyre friction scaled down (env.unwrapped.set_friction_scale); no tyre-slip model, "
    "so it only matters near the grip limit v²/(gR): little effect at 1.5 m/s, lane departures at 3 m/s from wet:4",
    "delay": "actuator delay: actions reach the env k policy steps late",
    "wind": "wind with gusts (env.unwrapped.set_wind, drone)",
    "dense": "denser forest than in training (env.unwrapped.set_tree_density_scale, drone)",
    "framedrop": "irregular camera timing: frames dropped and delivered late (info['frame_delivered'], "
    "info['frame_timestamp']); the evaluation runs the policy on delivered frames only",
}

#: Every condition name a spec may use: image corruptions first, then dynamics shifts.
CONDITION_NAMES: tuple[str, ...] = (*CORRUPTIONS, *DYNAMICS_CONDITIONS)

CLEAN = "clean"


@dataclass(frozen=True)
class Condition:
    """One domain-shift condition: ``name`` from :data:`CONDITION_NAMES`, ``severity`` in 1..5."""

    name: str
    severity: int

    def __post_init__(self) -> None:
        if self.name not in CONDITION_NAMES:
            raise ValueError(
                f"unknown condition {self.name!r}; allowed: {', '.join(CONDITION_NAMES)} (or 'clean')"
            )
        if isinstance(self.severity, bool) or not isinstance(self.severity, int) or not 1 <= self.severity <= 5:
            raise ValueError(
                f"severity of {self.name!r} must be an integer in 1..5, got {self.severity!r}"
            )

    @property
    def is_image(self) -> bool:
        """True for camera-image corruptions (rain also changes dynamics, see :mod:`.compose`)."""
        return self.name in CORRUPTIONS

    def __str__(self) -> str:
        return f"{self.name}:{self.severity}"


def parse_conditions(spec: str) -> list[Condition]:
    """Parse a spec string such as ``"rain:3+noise:2"``; ``"clean"`` (or ``""``) gives ``[]``."""
    if not isinstance(spec, str):
        raise ValueError(f"condition spec must be a string like 'rain:3+noise:2', got {type(spec).__name__}")
    text = spec.strip().lower()
    if text in ("", CLEAN):
        return []
    conditions: list[Condition] = []
    for raw in text.split("+"):
        term = raw.strip()
        if term == CLEAN:
            raise ValueError(f"'clean' cannot be combined with other conditions in {spec!r}")
        if ":" not in term:
            hint = f"e.g. '{term}:3'" if term in CONDITION_NAMES else f"allowed names: {', '.join(CONDITION_NAMES)}"
            raise ValueError(f"condition term {term!r} in {spec!r} must be name:severity (severity 1..5); {hint}")
        name, _, level = term.partition(":")
        name, level = name.strip(), level.strip()
        if name not in CONDITION_NAMES:
            raise ValueError(
                f"unknown condition {name!r} in {spec!r}; allowed: {', '.join(CONDITION_NAMES)} (or 'clean')"
            )
        try:
            severity = int(level)
        except ValueError:
            raise ValueError(f"severity {level!r} of {name!r} in {spec!r} must be an integer in 1..5") from None
        if not 1 <= severity <= 5:
            raise ValueError(f"severity {severity} of {name!r} in {spec!r} is outside 1..5")
        if any(c.name == name for c in conditions):
            raise ValueError(f"condition {name!r} appears twice in {spec!r}; give it once")
        conditions.append(Condition(name, severity))
    return conditions


def format_conditions(conditions: Iterable[Condition]) -> str:
    """The canonical spec string for ``conditions`` (``"clean"`` when empty)."""
    parts = [str(c) for c in conditions]
    return "+".join(parts) if parts else CLEAN

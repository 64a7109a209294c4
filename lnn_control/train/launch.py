"""The training launch file (e.g. ``launch/lane_keeping.yaml``): collect → train → DAgger → bundle.

Every section is a typed dataclass; unknown keys are rejected with the key and file named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lnn_control.config import ConfigError, load_yaml_dataclass
from lnn_control.train.bc import TrainConfig
from lnn_control.train.selection import SelectSection

CoreType = Literal["ltc", "cfc", "wired_ctrnn", "lstm", "gru", "ctrnn", "feedforward"]


@dataclass(frozen=True)
class CollectSection:
    """Expert demonstrations with DART noise (see :mod:`lnn_control.data.collect`)."""

    episodes: int = 40
    noise_std: float = 0.1
    domain_randomization: bool = True
    conditions: list[str] = field(default_factory=lambda: ["clean"])


@dataclass(frozen=True)
class DaggerSection:
    """DAgger rounds after the first training: collect with the learner, label with the expert,
    fine-tune from the kept checkpoint on all data so far in the first stage's label units. With
    closed-loop selection a round whose best score is below the policy it started from is rejected:
    its weights are dropped (its episodes stay in the dataset), and the bundle records it."""

    rounds: int = 1
    episodes: int = 20
    learner_mix: float = 0.5
    epochs: int = 6


@dataclass(frozen=True)
class PolicySection:
    """Architecture: a preset of :mod:`lnn_control.policies.presets` (``ncp19_car``, ``ncp19_drone``,
    ``ncp34_drone``: camera, wiring) and the core type; the env's specs override the preset's.

    hidden_size is used by the baseline cores (lstm, gru, ctrnn, feedforward) only.
    """

    core: CoreType = "ltc"
    preset: str = "ncp19_car"
    hidden_size: int = 19


@dataclass(frozen=True)
class TrainLaunch:
    task: str = "lane-keeping"
    backend: Literal["mujoco", "pybullet"] = "pybullet"
    seed: int = 0
    env_kwargs: dict = field(default_factory=dict)
    collect: CollectSection = field(default_factory=CollectSection)
    dagger: DaggerSection = field(default_factory=DaggerSection)
    policy: PolicySection = field(default_factory=PolicySection)
    train: TrainConfig = field(default_factory=TrainConfig)
    select: SelectSection = field(default_factory=SelectSection)


def load_train_launch(name_or_path: str | Path) -> tuple[TrainLaunch, str]:
    """Load a launch file by path, or by name from the shipped ``lnn_control.launch`` files.

    Returns the config and the text of the file (recorded in the bundle's provenance).
    """
    path = Path(name_or_path)
    if not path.is_file():
        from importlib.resources import files

        shipped = files("lnn_control.launch").joinpath(path.name if path.suffix else f"{path.name}.yaml")
        if not shipped.is_file():
            names = sorted(p.name for p in files("lnn_control.launch").iterdir() if p.name.endswith(".yaml"))
            raise ConfigError(f"launch file {name_or_path!s} not found (neither a file nor a shipped launch file: {names})")
        path = Path(str(shipped))
    return load_yaml_dataclass(TrainLaunch, path), path.read_text(encoding="utf-8")

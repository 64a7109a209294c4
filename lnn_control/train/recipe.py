"""The training launch file (e.g. ``launch/lane_keeping.yaml``): collect → train → DAgger → bundle.

Every section is a typed dataclass; unknown keys are rejected with the key and file named.
Fine-tuning keys (``launch/lane_keeping_finetune.yaml``): ``init_from`` (a bundle to start from,
:mod:`lnn_control.train.init_from`), ``datasets`` (dataset folders with mixing weights,
:mod:`lnn_control.data.mixture`), ``freeze`` (:mod:`lnn_control.train.freeze`); ``collect.episodes:
0`` trains on the given datasets only. :func:`check_launch` checks how the sections fit together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lnn_control.config import ConfigError, load_yaml_text_dataclass
from lnn_control.nn.perception import FeatureNorm
from lnn_control.train.bc import TrainConfig
from lnn_control.train.freeze import FreezeKind
from lnn_control.train.selection import SelectSection

CoreType = Literal["ltc", "cfc", "wired_ctrnn", "lstm", "gru", "ctrnn", "feedforward"]


@dataclass(frozen=True)
class CollectSection:
    """Expert demonstrations with DART noise (see :mod:`lnn_control.data.collect`).

    episodes: simulated expert episodes (0: none; the run trains on ``datasets`` only).
    weight: mixing weight of these episodes (and the DAgger ones) next to ``datasets``; relative,
        like the datasets' weights; unused when there are no ``datasets``.
    noise_seeding: ``shared`` (one noise generator over all episodes: the shipped recipes) or
        ``per_episode`` (each episode its own: the data is the same for any worker count and after
        a resume); see :mod:`lnn_control.data.collect`.
    workers: processes collecting the expert episodes and the DAgger rounds' episodes in parallel
        (needs ``per_episode``; the learner runs in the workers on one thread).
    """

    episodes: int = 40
    noise_std: float = 0.1
    domain_randomization: bool = True
    conditions: list[str] = field(default_factory=lambda: ["clean"])
    weight: float = 1.0
    noise_seeding: Literal["shared", "per_episode"] = "shared"
    workers: int = 1

    def __post_init__(self) -> None:
        if self.noise_seeding not in ("shared", "per_episode"):
            raise ValueError(f"collect.noise_seeding must be 'shared' or 'per_episode', got {self.noise_seeding!r}")
        if self.workers < 1:
            raise ValueError(f"collect.workers must be ≥ 1, got {self.workers}")
        if self.workers > 1 and self.noise_seeding != "per_episode":
            raise ValueError("collect.workers > 1 needs collect.noise_seeding: per_episode (shared noise is drawn "
                             "in episode order)")
        if self.episodes < 0:
            raise ValueError(f"collect.episodes must be ≥ 0 (0 = no simulated collection), got {self.episodes}")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"collect.weight must be a finite number > 0, got {self.weight}")


@dataclass(frozen=True)
class DatasetEntry:
    """An existing dataset folder to train on (``lnn-control dataset from-log`` or ``collect``).

    path: the folder; relative paths are relative to the current directory (as ``--out``).
    weight: relative mixing weight: the dataset's share of each epoch's training windows is
        ``weight / sum of all weights`` (the recipe's own collection counts with ``collect.weight``).
    """

    path: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.path.strip():
            raise ValueError("datasets[].path must name a dataset folder")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"datasets[].weight of {self.path} must be a finite number > 0, got {self.weight} "
                             "(leave the entry out to not train on it)")


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
    feature_norm: what the CNN's features pass through before the core (``none`` or ``layer_tanh``,
        :class:`lnn_control.nn.perception.FeatureNorm`).
    """

    core: CoreType = "ltc"
    preset: str = "ncp19_car"
    hidden_size: int = 19
    feature_norm: FeatureNorm = FeatureNorm.NONE


@dataclass(frozen=True)
class TrainRecipe:
    """A training recipe (see the module docstring and the shipped ``launch/*.yaml``).

    init_from: a bundle folder, ``.zip`` or shipped bundle name to start from (``None``: fresh weights).
    freeze: ``none``, ``perception`` or ``core``: the part of the policy kept fixed in every stage.
    datasets: existing dataset folders trained on next to (or, with ``collect.episodes: 0``, instead
        of) the recipe's own simulated collection, each with a mixing weight.
    """

    task: str = "lane-keeping"
    backend: Literal["mujoco", "pybullet"] = "pybullet"
    seed: int = 0
    env_kwargs: dict = field(default_factory=dict)
    collect: CollectSection = field(default_factory=CollectSection)
    dagger: DaggerSection = field(default_factory=DaggerSection)
    policy: PolicySection = field(default_factory=PolicySection)
    train: TrainConfig = field(default_factory=TrainConfig)
    select: SelectSection = field(default_factory=SelectSection)
    init_from: str | None = None
    freeze: FreezeKind = "none"
    datasets: tuple[DatasetEntry, ...] = ()


def needs_simulator(launch: TrainRecipe) -> bool:
    """Whether the run drives the task's simulator: to collect, for DAgger, or for closed-loop selection."""
    return launch.collect.episodes > 0 or launch.dagger.rounds > 0 or launch.select.metric == "closed_loop"


def check_launch(launch: TrainRecipe, source: str = "launch file") -> None:
    """How the sections fit together (after command-line overrides): a :class:`ConfigError` naming the
    keys and what is allowed when the run has no training data or asks DAgger for a run without
    simulated collection."""
    if launch.collect.episodes == 0 and not launch.datasets:
        raise ConfigError(f"{source}: no training data: collect.episodes is 0 and 'datasets' is empty; give "
                          "datasets (launch file 'datasets:' or --dataset DATA[:WEIGHT]) or collect.episodes > 0")
    if launch.collect.episodes == 0 and launch.dagger.rounds > 0:
        raise ConfigError(f"{source}: dagger.rounds is {launch.dagger.rounds} but collect.episodes is 0; DAgger "
                          "rounds extend the simulated collection: set dagger.rounds: 0 for a run on datasets only")


    if launch.init_from and launch.select.restarts:
        raise ConfigError(f"{source}: select.restarts is {launch.select.restarts} with init_from "
                          f"{launch.init_from!r}; a restart starts from fresh weights, which a fine-tune does not "
                          "want: set select.restarts: 0")


def load_train_launch(name_or_path: str | Path) -> tuple[TrainRecipe, str]:
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read launch file: {exc.strerror}") from exc
    return load_yaml_text_dataclass(TrainRecipe, text, str(path)), text

"""The study file: what to train, on what data, and under which conditions to evaluate it.

Loaded strictly with :mod:`lnn_control.config` (an unknown key or a wrong type names the key and
the file), then checked as a whole by :func:`validate_study` (unknown architectures, conditions,
severities, backends, a training launch file for another task) before any work starts. Example:
``launch/study_smoke.yaml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lnn_control.config import ConfigError, load_dataclass

Backend = Literal["mujoco", "pybullet"]


@dataclass(frozen=True)
class DataSection:
    """The one dataset every model trains on (collected by the training launch file's ``collect``
    section). ``episodes``: override its episode count (null = the launch file's)."""

    episodes: int | None = None


@dataclass(frozen=True)
class TrainSection:
    """Training: the launch file's ``train`` section, with ``epochs`` optionally overridden.

    per_model_dagger: false (default: identical data for every model) or true (each model then runs
    the launch file's DAgger rounds on its own copy of the data; the report says so).
    """

    epochs: int | None = None
    per_model_dagger: bool = False


@dataclass(frozen=True)
class EvalSection:
    """Closed-loop evaluation cells: every model × backend × condition.

    conditions: condition name -> severities (``{rain: [3, 5], framedrop: [2, 4]}``); ``clean`` is
    always evaluated. timing_ablation: also evaluate every ``framedrop`` condition with the policy
    told the nominal period instead of the measured dt. episodes: held-out episodes per cell,
    seeds ``seed``, ``seed + 1``, ... (≥ 1000). env_kwargs: env keyword arguments for the
    evaluation only, added last (e.g. shorter held-out roads, leaving the training recipe as it is).
    """

    backends: list[Backend] = field(default_factory=lambda: ["pybullet"])
    conditions: dict[str, list[int]] = field(default_factory=dict)
    timing_ablation: bool = True
    episodes: int = 10
    seed: int = 1000
    env_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttentionSection:
    """Optional attention numbers (:mod:`lnn_control.study.attention`): with ``enabled: true`` every
    (model, backend, condition) also gets ``lnn-control explain``'s SSIM and saliency-mass numbers
    on the first ``seconds`` of held-out episode ``eval.seed``; ``samples``: SmoothGrad copies per frame."""

    enabled: bool = False
    seconds: float = 10.0
    samples: int = 4


@dataclass(frozen=True)
class StudyConfig:
    """A study (see ``launch/study_*.yaml``).

    task: a task name; training_launch: that task's training launch file (shipped name or path),
    whose collect/train recipe every model uses; architectures: names from
    :data:`lnn_control.study.architectures.ARCHITECTURES`; seeds: training seeds (policy
    initialisation, window order, train/validation split); env_kwargs: env keyword arguments
    added to the launch file's for collection and evaluation (e.g. a shorter road).
    """

    name: str
    task: str
    training_launch: str
    architectures: list[str]
    seeds: list[int]
    eval: EvalSection = field(default_factory=EvalSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    attention: AttentionSection = field(default_factory=AttentionSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def canonical(self) -> dict[str, Any]:
        """The study without values equal to their defaults: what a re-run must match (a field
        added to this class later, with a default, does not orphan an existing study folder)."""
        return _non_default(self)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the study."""
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()

    def condition_specs(self) -> list[str]:
        """``clean`` then every ``name:severity`` in file order."""
        specs = ["clean"]
        for name, severities in self.eval.conditions.items():
            specs += [f"{name}:{s}" for s in severities]
        return specs


def _non_default(obj: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if dataclasses.is_dataclass(value):
            nested = _non_default(value)
            if nested:
                out[f.name] = nested
        elif value != default:
            out[f.name] = value
    return out


def resolve_study_path(name_or_path: str | Path) -> Path:
    """A study file by path, or by name among the shipped ``lnn_control.launch`` files."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    from importlib.resources import files

    shipped = files("lnn_control.launch").joinpath(path.name if path.suffix else f"{path.name}.yaml")
    if shipped.is_file():
        return Path(str(shipped))
    names = sorted(p.name for p in files("lnn_control.launch").iterdir() if p.name.startswith("study_"))
    raise ConfigError(f"study file {name_or_path!s} not found (neither a file nor a shipped study: {names})")


def load_study(name_or_path: str | Path) -> tuple[StudyConfig, Path]:
    """Load and fully validate a study file; returns the config and the resolved path."""
    import yaml

    path = resolve_study_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    study = load_dataclass(StudyConfig, data, str(path))
    validate_study(study, str(path))
    return study, path


def validate_study(study: StudyConfig, source: str) -> None:
    """Check names and ranges across the whole study; :class:`ConfigError` names key, file, allowed."""
    from lnn_control.envs.wrappers.spec import CONDITION_NAMES
    from lnn_control.study.architectures import ARCHITECTURES
    from lnn_control.tasks import HELD_OUT_SEED_START, TASKS
    from lnn_control.train.recipe import load_train_launch

    if study.task not in TASKS:
        raise ConfigError(f"{source}: 'task' is {study.task!r}; allowed values: {sorted(TASKS)}")
    if not study.name.strip():
        raise ConfigError(f"{source}: 'name' must not be empty")
    try:
        launch, _ = load_train_launch(study.training_launch)
    except ConfigError as exc:
        raise ConfigError(f"{source}: 'training_launch': {exc}") from exc
    if launch.task != study.task:
        raise ConfigError(
            f"{source}: 'training_launch' {study.training_launch!r} trains task {launch.task!r}, "
            f"but the study's task is {study.task!r}; use that task's launch file"
        )
    _nonempty_unique(study.architectures, "architectures", source)
    for index, name in enumerate(study.architectures):
        if name not in ARCHITECTURES:
            raise ConfigError(f"{source}: 'architectures[{index}]' is {name!r}; allowed values: {sorted(ARCHITECTURES)}")
    _nonempty_unique(study.seeds, "seeds", source)
    for index, seed in enumerate(study.seeds):
        if seed < 0:
            raise ConfigError(f"{source}: 'seeds[{index}]' must be ≥ 0, got {seed}")
    _nonempty_unique(study.eval.backends, "eval.backends", source)
    for name, severities in study.eval.conditions.items():
        if name not in CONDITION_NAMES:
            raise ConfigError(
                f"{source}: 'eval.conditions.{name}' is not a condition; allowed: {list(CONDITION_NAMES)} "
                "('clean' is always evaluated)"
            )
        _nonempty_unique(severities, f"eval.conditions.{name}", source)
        for index, severity in enumerate(severities):
            if not 1 <= severity <= 5:
                raise ConfigError(f"{source}: 'eval.conditions.{name}[{index}]' is {severity}; severities are 1..5")
    if study.eval.episodes < 1:
        raise ConfigError(f"{source}: 'eval.episodes' must be ≥ 1, got {study.eval.episodes}")
    if study.eval.seed < HELD_OUT_SEED_START:
        raise ConfigError(f"{source}: 'eval.seed' is {study.eval.seed}; held-out seeds start at {HELD_OUT_SEED_START}")
    if study.data.episodes is not None and study.data.episodes < 1:
        raise ConfigError(f"{source}: 'data.episodes' must be ≥ 1 (or null), got {study.data.episodes}")
    if study.train.epochs is not None and study.train.epochs < 1:
        raise ConfigError(f"{source}: 'train.epochs' must be ≥ 1 (or null), got {study.train.epochs}")
    if not study.attention.seconds > 0:
        raise ConfigError(f"{source}: 'attention.seconds' must be > 0, got {study.attention.seconds}")
    if study.attention.samples < 1:
        raise ConfigError(f"{source}: 'attention.samples' must be ≥ 1, got {study.attention.samples}")


def _nonempty_unique(values: list[Any], key: str, source: str) -> None:
    if not values:
        raise ConfigError(f"{source}: '{key}' must list at least one value")
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{source}: '{key}' lists {repeated} more than once")

"""The training data of a launch file: the recipe's own simulated collection and the given datasets.

Without ``datasets`` the run trains on its collection folder (``OUT/data``) alone, exactly as
before mixing existed. With ``datasets`` it trains on a :class:`~lnn_control.data.mixture.DatasetMix`:
the collection first (named ``collected``, weight ``collect.weight``; only when
``collect.episodes > 0``), then every entry of ``datasets`` in order (named by the path as given).
Every dataset must have the policy's observation and action spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnn_control.config import ConfigError
from lnn_control.data.episodes import DatasetError, EpisodeDataset
from lnn_control.data.mixture import DatasetMix, MixSource, spec_differences
from lnn_control.train.recipe import DatasetEntry, TrainRecipe

if TYPE_CHECKING:
    from lnn_control.policies.policy import Policy

COLLECTED = "collected"
"""The name of the recipe's own simulated episodes in a mix and in the provenance."""
RECORDED = "recorded"
"""Training condition recorded for episodes without a simulated condition (run-log datasets)."""


def open_datasets(entries: tuple[DatasetEntry, ...] | list[DatasetEntry]) -> list[MixSource]:
    """The launch file's ``datasets`` as mix sources; a missing or unreadable folder is a
    :class:`ConfigError` naming its entry."""
    sources = []
    for index, entry in enumerate(entries):
        path = Path(entry.path).expanduser()
        if not path.is_dir():
            raise ConfigError(f"datasets[{index}]: {entry.path} is not a folder; give a dataset folder written by "
                              "'lnn-control dataset from-log' or 'lnn-control collect'")
        try:
            dataset = EpisodeDataset(path)
        except DatasetError as exc:
            raise ConfigError(f"datasets[{index}]: {exc}") from None
        sources.append(MixSource(entry.path, dataset, entry.weight))
    return sources


def training_data(launch: TrainRecipe, data_dir: Path, given: list[MixSource]) -> EpisodeDataset | DatasetMix:
    """What a stage trains on now (the collection folder may have grown since the last stage)."""
    if not given:
        return EpisodeDataset(data_dir)
    collected = [MixSource(COLLECTED, EpisodeDataset(data_dir), launch.collect.weight)] if launch.collect.episodes > 0 else []
    try:
        return DatasetMix(collected + given)
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None


def check_fits_policy(data: EpisodeDataset | DatasetMix, policy: Policy) -> None:
    """The datasets' specs must be the policy's (field by field in the error)."""
    name = data.root if isinstance(data, EpisodeDataset) else ", ".join(s.name for s in data.sources)
    for what, theirs, mine in (
        ("observation spec", data.manifest.observation_spec, policy.observation_spec),
        ("action spec", data.manifest.action_spec, policy.action_spec),
    ):
        diffs = spec_differences(mine, theirs)
        if diffs:
            raise ConfigError(
                f"dataset(s) {name}: the {what} differs from the policy's (policy vs data: {'; '.join(diffs)}); "
                "train on data recorded with the policy's specs (dataset from-log --spec POLICY)"
            )


def training_conditions(data: EpisodeDataset | DatasetMix) -> list[str]:
    """The condition specs of the episodes; in a mix, episodes without one (run-log data) count as
    ``recorded`` (a plain collection folder keeps the old default, ``clean``)."""
    default = "clean" if isinstance(data, EpisodeDataset) else RECORDED
    return sorted({str(data.metadata(i).get("condition", default)) for i in range(len(data))})


def datasets_record(data: EpisodeDataset | DatasetMix, collect_weight: float) -> list[dict[str, Any]]:
    """Per dataset: name, path, content hash, episodes, weight and share (see ``DatasetMix.record``)."""
    mix = data if isinstance(data, DatasetMix) else DatasetMix([MixSource(COLLECTED, data, collect_weight)])
    return mix.record()

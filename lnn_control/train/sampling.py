"""Which windows a training epoch visits: the validation split and the per-epoch window order.

One dataset (an :class:`~lnn_control.data.episodes.EpisodeDataset`, or a
:class:`~lnn_control.data.mixture.DatasetMix` of one source): episodes are split into training and
validation by episode, and every epoch visits each training window once in a fresh random order
(:class:`UniformSampler`; the trainer's behaviour before mixing existed, bit for bit).

Several datasets (a mix): each dataset is split on its own (``val_fraction`` of *its* episodes, at
least one when it has two or more; a one-episode dataset has no validation episode), in source
order from the same generator. An epoch has as many windows as all training windows together;
:func:`apportion` gives each dataset its exact share of them (largest remainder, ties to the
earlier dataset), the windows of one dataset are drawn without replacement, cycling through fresh
permutations when its share is larger than its window count (a small real dataset is repeated,
a large one subsampled), and the epoch's windows are then shuffled together
(:class:`WeightedSampler`). Everything comes from the trainer's seeded generator: the same seed
gives the same windows in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lnn_control.data.episodes import Episode, EpisodeDataset
from lnn_control.data.mixture import DatasetMix
from lnn_control.train.windows import Window, make_windows, split_episodes


def apportion(shares: list[float], total: int) -> list[int]:
    """Split ``total`` items by ``shares`` (≥ 0, summing to 1) into integers that sum to ``total``:
    floors of ``share * total``, then one more each to the largest remainders (ties: lower index)."""
    if total < 0 or any(s < 0 for s in shares) or not shares:
        raise ValueError(f"apportion needs shares ≥ 0 and total ≥ 0, got {shares} and {total}")
    quotas = [s * total for s in shares]
    counts = [int(np.floor(q)) for q in quotas]
    left = total - sum(counts)
    by_remainder = sorted(range(len(shares)), key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in by_remainder[:left]:
        counts[k] += 1
    return counts


class UniformSampler:
    """Every training window once per epoch, in an order drawn from the generator."""

    def __init__(self, windows: list[Window]) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def epoch(self, rng: np.random.Generator) -> list[Window]:
        order = rng.permutation(len(self.windows))
        return [self.windows[j] for j in order]


class WeightedSampler:
    """``counts[k]`` windows of dataset ``k`` per epoch (see the module docstring), shuffled together."""

    def __init__(self, windows_by_source: list[list[Window]], shares: list[float], epoch_size: int) -> None:
        self.windows_by_source = windows_by_source
        self.counts = apportion(shares, epoch_size)

    def __len__(self) -> int:
        return sum(self.counts)

    def epoch(self, rng: np.random.Generator) -> list[Window]:
        drawn: list[Window] = []
        for windows, count in zip(self.windows_by_source, self.counts):
            picks: list[int] = []
            while len(picks) < count:
                picks.extend(rng.permutation(len(windows)).tolist())
            drawn.extend(windows[j] for j in picks[:count])
        order = rng.permutation(len(drawn))
        return [drawn[j] for j in order]


@dataclass
class ValidationGroup:
    """One dataset's validation windows and its share of the validation loss (its mixing share)."""

    name: str
    share: float
    windows: list[Window]


@dataclass
class WindowPlan:
    """Episodes by global index, the training episode ids, the sampler and the validation groups."""

    episodes: dict[int, Episode]
    train_ids: list[int]
    sampler: UniformSampler | WeightedSampler
    validation: list[ValidationGroup]


def plan_windows(dataset: EpisodeDataset | DatasetMix, seq_len: int, stride: int, val_fraction: float,
                 rng: np.random.Generator) -> WindowPlan:
    """Load the episodes, split them and build the epoch sampler (see the module docstring).

    Training windows are ``seq_len`` steps every ``stride`` steps; validation windows do not overlap."""
    if len(dataset) == 0:
        root = dataset.root if isinstance(dataset, EpisodeDataset) else "(mix)"
        raise ValueError(f"dataset {root} has no episodes; run 'lnn-control collect' first")
    episodes = {i: dataset[i] for i in range(len(dataset))}
    if not isinstance(dataset, DatasetMix) or len(dataset.sources) == 1:
        name = "dataset" if not isinstance(dataset, DatasetMix) else dataset.sources[0].name
        train_ids, val_ids = split_episodes(len(episodes), val_fraction, rng)
        train_windows = make_windows({i: len(episodes[i]) for i in train_ids}, seq_len, stride)
        val_windows = make_windows({i: len(episodes[i]) for i in val_ids}, seq_len, seq_len)
        return WindowPlan(episodes, train_ids, UniformSampler(train_windows), [ValidationGroup(name, 1.0, val_windows)])
    all_train: list[int] = []
    by_source: list[list[Window]] = []
    groups: list[ValidationGroup] = []
    for k, (source, share) in enumerate(zip(dataset.sources, dataset.shares)):
        ids = dataset.source_range(k)
        local_train, local_val = split_episodes(len(ids), val_fraction, rng)
        train_ids = [ids[i] for i in local_train]
        if not train_ids:
            raise ValueError(
                f"dataset {source.name}: no training episode left after the validation split ({len(ids)} "
                f"episodes, val_fraction {val_fraction}); lower train.val_fraction or record more episodes"
            )
        all_train.extend(train_ids)
        by_source.append(make_windows({i: len(episodes[i]) for i in train_ids}, seq_len, stride))
        groups.append(ValidationGroup(source.name, share,
                                      make_windows({ids[i]: len(episodes[ids[i]]) for i in local_val}, seq_len, seq_len)))
    sampler = WeightedSampler(by_source, list(dataset.shares), sum(len(w) for w in by_source))
    return WindowPlan(episodes, all_train, sampler, groups)

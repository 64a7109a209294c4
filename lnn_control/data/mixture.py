"""Several episode datasets trained on together, each with a mixing weight.

A :class:`DatasetMix` is a read-only view over datasets that share one observation and action
spec (the recipe's own simulated collection, folders written by ``lnn-control dataset from-log``
or ``lnn-control collect``). It numbers their episodes one after the other (global index ``i``
of source ``k`` is ``offsets[k] + local index``), so the trainer can load them like one dataset,
and it keeps, per source, the weight that decides the source's share of training windows (see
:mod:`lnn_control.train.sampling`). Weights are relative: any positive numbers, normalised to
shares that sum to 1.

Hashes: :meth:`DatasetMix.content_hash` is a source's own
:meth:`~lnn_control.data.episodes.EpisodeDataset.content_hash` when there is one source, else the
SHA-256 of the JSON list ``[[hash, share], ...]`` in source order; :meth:`DatasetMix.record` lists
every source's hash, episodes, weight and share for a bundle's provenance.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lnn_control.data.episodes import DatasetError, DatasetManifest, Episode, EpisodeDataset
from lnn_control.spec import ActionSpec, ObservationSpec


@dataclass(frozen=True)
class MixSource:
    """One dataset of a mix.

    name: how errors and the provenance name it (``collected`` for the recipe's own simulated
        episodes, else the path as the user gave it).
    weight: relative sampling weight, finite and > 0.
    """

    name: str
    dataset: EpisodeDataset
    weight: float = 1.0


def spec_differences(expected: ObservationSpec | ActionSpec, found: ObservationSpec | ActionSpec) -> list[str]:
    """``field: A vs B`` for every field where two specs of the same kind differ (empty: equal)."""
    def comparable(value: Any) -> Any:
        return tuple(value) if isinstance(value, list | tuple) else value

    theirs = asdict(found)
    return [f"{key}: {comparable(value)} vs {comparable(theirs[key])}"
            for key, value in asdict(expected).items() if comparable(value) != comparable(theirs[key])]


class DatasetMix:
    """Datasets with one shared spec and a weight each (see the module docstring).

    Raises :class:`~lnn_control.data.episodes.DatasetError` naming the dataset for: no sources, a
    name given twice, a weight that is not a finite number > 0, a dataset without episodes, or a dataset whose
    observation or action spec differs from the first one's (the fields that differ are listed).
    """

    def __init__(self, sources: Sequence[MixSource]) -> None:
        if not sources:
            raise DatasetError("a dataset mix needs at least one dataset")
        first = sources[0]
        names = [s.name for s in sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DatasetError(f"dataset(s) {twice} given more than once; give each dataset once, with one weight")
        for source in sources:
            if isinstance(source.weight, bool) or not math.isfinite(source.weight) or source.weight <= 0:
                raise DatasetError(f"dataset {source.name}: weight must be a finite number > 0, got {source.weight!r}")
            if len(source.dataset) == 0:
                raise DatasetError(f"dataset {source.name} ({source.dataset.root}) has no episodes")
            for what, mine, theirs in (
                ("observation spec", first.dataset.manifest.observation_spec, source.dataset.manifest.observation_spec),
                ("action spec", first.dataset.manifest.action_spec, source.dataset.manifest.action_spec),
            ):
                diffs = spec_differences(mine, theirs)
                if diffs:
                    raise DatasetError(
                        f"dataset {source.name} ({source.dataset.root}): its {what} differs from dataset "
                        f"{first.name}'s ({'; '.join(diffs)}); every dataset of a training run needs the same "
                        "specs (convert run logs with --spec POLICY and --image-size HxW to match)"
                    )
        self.sources = list(sources)
        self.manifest: DatasetManifest = first.dataset.manifest
        self.offsets = [0]
        for source in self.sources:
            self.offsets.append(self.offsets[-1] + len(source.dataset))
        total = sum(s.weight for s in self.sources)
        self.shares = [s.weight / total for s in self.sources]

    def __len__(self) -> int:
        return self.offsets[-1]

    def __iter__(self) -> Iterator[Episode]:
        for index in range(len(self)):
            yield self[index]

    def __getitem__(self, index: int) -> Episode:
        source, local = self.locate(index)
        return self.sources[source].dataset[local]

    def locate(self, index: int) -> tuple[int, int]:
        """(source number, episode index inside that source) of global episode ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"episode {index} out of range: the mix has {len(self)} episodes")
        source = next(k for k in range(len(self.sources)) if index < self.offsets[k + 1])
        return source, index - self.offsets[source]

    def source_range(self, source: int) -> range:
        """Global episode indices of source number ``source``."""
        return range(self.offsets[source], self.offsets[source + 1])

    def metadata(self, index: int) -> dict[str, Any]:
        """Episode ``index``'s metadata header (see :meth:`EpisodeDataset.metadata`)."""
        source, local = self.locate(index)
        return self.sources[source].dataset.metadata(local)

    def content_hash(self) -> str:
        """One source: its content hash; several: SHA-256 of ``[[hash, share], ...]`` (JSON, source order)."""
        hashes = [s.dataset.content_hash() for s in self.sources]
        if len(hashes) == 1:
            return hashes[0]
        pairs = [[h, share] for h, share in zip(hashes, self.shares)]
        return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()

    def record(self) -> list[dict[str, Any]]:
        """Per source, for provenance: name, absolute path, content hash, episodes, weight, share."""
        return [
            {
                "name": source.name,
                "path": str(source.dataset.root.resolve()),
                "hash": source.dataset.content_hash(),
                "episodes": len(source.dataset),
                "weight": source.weight,
                "share": share,
            }
            for source, share in zip(self.sources, self.shares)
        ]

"""Feature statistics in LeRobot's ``stats.json`` form: min, max, mean, std, count, q01, q10, q50, q90, q99.

Numeric features: per component over frames, shape [N] (``count`` [1] = frames). Camera features:
per RGB channel over every pixel of every frame, scaled to [0, 1], shape [3, 1, 1] as LeRobot
writes them. LeRobot estimates quantiles from histograms of sampled frames; here they are exact
(``numpy.quantile``'s linear rule; for uint8 pixels, from a 256-bin histogram per channel), so
datasets are summarised over all their data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of ``values`` [T, N] (or [T]) per component; float64 arrays of shape [N], count [1]."""
    data = np.asarray(values, np.float64).reshape(len(values), -1)
    if data.shape[0] == 0:
        raise ValueError("statistics of an empty feature: an episode has no frames")
    stats = {
        "min": data.min(axis=0),
        "max": data.max(axis=0),
        "mean": data.mean(axis=0),
        "std": data.std(axis=0),
        "count": np.array([data.shape[0]], np.int64),
    }
    for key, value in zip(QUANTILE_KEYS, np.quantile(data, QUANTILES, axis=0)):
        stats[key] = value
    return stats


@dataclass
class ImageStats:
    """Running per-channel pixel histogram of uint8 RGB frames [T, H, W, 3]."""

    histogram: np.ndarray = field(default_factory=lambda: np.zeros((3, 256), np.int64))
    frames: int = 0

    def add(self, frames: np.ndarray) -> None:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        for channel in range(3):
            self.histogram[channel] += np.bincount(frames[..., channel].ravel(), minlength=256)
        self.frames += frames.shape[0]

    def merge(self, other: ImageStats) -> None:
        self.histogram += other.histogram
        self.frames += other.frames

    def stats(self) -> dict[str, np.ndarray]:
        """Per channel, pixel values / 255, each of shape [3, 1, 1]; count [1] = frames."""
        if self.frames == 0:
            raise ValueError("statistics of no frames")
        values = np.arange(256, dtype=np.float64)
        rows: dict[str, list[float]] = {k: [] for k in ("min", "max", "mean", "std", *QUANTILE_KEYS)}
        for counts in self.histogram:
            total = counts.sum()
            present = np.nonzero(counts)[0]
            mean = float((counts * values).sum() / total)
            rows["min"].append(float(present[0]))
            rows["max"].append(float(present[-1]))
            rows["mean"].append(mean)
            rows["std"].append(float(np.sqrt((counts * (values - mean) ** 2).sum() / total)))
            cumulative = np.cumsum(counts)
            for key, q in zip(QUANTILE_KEYS, QUANTILES):
                rows[key].append(_histogram_quantile(cumulative, q))
        stats = {key: (np.asarray(row) / 255.0).reshape(3, 1, 1) for key, row in rows.items()}
        stats["count"] = np.array([self.frames], np.int64)
        return stats


def _histogram_quantile(cumulative: np.ndarray, q: float) -> float:
    """The ``q`` quantile of the integer values a cumulative histogram counts (numpy's linear rule)."""
    position = q * (cumulative[-1] - 1)
    lower, upper = int(np.floor(position)), int(np.ceil(position))
    value_lower = float(np.searchsorted(cumulative, lower, side="right"))
    value_upper = float(np.searchsorted(cumulative, upper, side="right"))
    return value_lower + (position - lower) * (value_upper - value_lower)


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """``{feature: {stat: nested lists}}`` as ``stats.json`` holds them."""
    return {key: {name: value.tolist() for name, value in feature.items()} for key, feature in stats.items()}

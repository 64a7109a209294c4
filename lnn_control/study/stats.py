"""Intervals for study results, computed (never eyeballed) and deterministic.

Success rates: the point estimate pools every episode of every training seed (each seed has the
same episodes, so it is also the mean of the per-seed rates). The 95 % interval is a
**seed-level cluster bootstrap**: resample the training seeds with replacement (their episodes
come along), recompute the pooled rate, take the 2.5/97.5 percentiles of ``RESAMPLES`` draws. It
treats the training seed as the unit of replication, so seed-to-seed spread (which dominated in
the issue's first measurements) widens the interval, not only episode noise. With one seed it
falls back to the **Wilson score interval** over that seed's episodes. Caveat: with few seeds
(5) the percentile bootstrap is somewhat too narrow; read overlapping intervals as "no evidence".

Per-seed metrics (mean |lateral error|, collision rate, ...): mean over seeds with the same
seed bootstrap. Paired differences (architecture A − B, or measured − nominal dt) resample the
seeds both share, keeping each seed's pair together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

RESAMPLES = 2000
BOOTSTRAP_SEED = 0
Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (``trials`` ≥ 1)."""
    if trials < 1:
        raise ValueError("trials must be ≥ 1")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _draws(count: int) -> np.ndarray:
    """``RESAMPLES`` × ``count`` seed indices, the same for every call with the same count."""
    return np.random.default_rng(BOOTSTRAP_SEED).integers(0, count, size=(RESAMPLES, count))


class SuccessInterval(TypedDict):
    """:func:`success_interval`'s result (a plain dict, as written to the report's JSON)."""

    mean: float
    low: float
    high: float
    method: str  # "wilson" (one seed) or "seed_bootstrap"
    seeds: int
    episodes: int


def success_interval(per_seed: Sequence[Sequence[bool]]) -> SuccessInterval:
    """Pooled success rate and its 95 % interval from per-seed episode outcomes."""
    groups = [np.asarray(g, float) for g in per_seed if len(g)]
    if not groups:
        raise ValueError("no episodes")
    successes = np.array([g.sum() for g in groups])
    trials = np.array([len(g) for g in groups])
    mean = float(successes.sum() / trials.sum())
    if len(groups) == 1:
        low, high = wilson_interval(int(successes[0]), int(trials[0]))
        method = "wilson"
    else:
        draws = _draws(len(groups))
        rates = successes[draws].sum(axis=1) / trials[draws].sum(axis=1)
        low, high = (float(v) for v in np.percentile(rates, [2.5, 97.5]))
        method = "seed_bootstrap"
    return {"mean": mean, "low": low, "high": high, "method": method, "seeds": len(groups), "episodes": int(trials.sum())}


def mean_interval(per_seed: Sequence[float | None]) -> dict[str, float | None | int]:
    """Mean over seeds of a per-seed value (``None`` values skipped) and its seed-bootstrap 95 % interval."""
    values = np.array([v for v in per_seed if v is not None and math.isfinite(v)], float)
    if len(values) == 0:
        return {"mean": None, "low": None, "high": None, "seeds": 0}
    if len(values) == 1:
        return {"mean": float(values[0]), "low": None, "high": None, "seeds": 1}
    means = values[_draws(len(values))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high), "seeds": len(values)}


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, float | None | int]:
    """Mean over shared seeds of ``a[seed] − b[seed]`` with a seed-bootstrap 95 % interval;
    ``excludes_zero`` says whether the interval lies on one side of 0."""
    seeds = sorted(set(a) & set(b))
    diffs = np.array([a[s] - b[s] for s in seeds], float)
    if len(diffs) == 0:
        return {"mean": None, "low": None, "high": None, "seeds": 0, "excludes_zero": False}
    if len(diffs) == 1:
        return {"mean": float(diffs[0]), "low": None, "high": None, "seeds": 1, "excludes_zero": False}
    means = diffs[_draws(len(diffs))].mean(axis=1)
    low, high = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    return {
        "mean": float(diffs.mean()), "low": low, "high": high, "seeds": len(diffs),
        "excludes_zero": bool(low > 0 or high < 0),
    }

"""Study intervals: Wilson for one seed, a deterministic seed-level bootstrap otherwise, paired differences."""

from __future__ import annotations

import pytest

from lnn_control.study.stats import (
    mean_interval,
    paired_difference,
    success_interval,
    wilson_interval,
)


def test_wilson_interval_matches_reference_values() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))


def test_one_seed_uses_wilson_several_use_the_seed_bootstrap() -> None:
    one = success_interval([[True, True, False, True]])
    assert one["method"] == "wilson" and one["mean"] == 0.75
    agreeing = success_interval([[True, False]] * 5)  # every seed alike: no seed-to-seed spread
    assert agreeing["method"] == "seed_bootstrap" and agreeing["low"] == agreeing["high"] == 0.5
    spread = success_interval([[True] * 4, [False] * 4, [True] * 4, [False] * 4, [True] * 4])
    assert spread["mean"] == 0.6 and spread["low"] < 0.3 and spread["high"] > 0.9
    assert success_interval([[True] * 4, [False] * 4, [True] * 4]) == success_interval([[True] * 4, [False] * 4, [True] * 4])


def test_paired_differences_and_means() -> None:
    better = paired_difference({0: 0.9, 1: 0.8, 2: 1.0, 3: 0.9}, {0: 0.5, 1: 0.4, 2: 0.6, 3: 0.5})
    assert better["mean"] == pytest.approx(0.4) and better["excludes_zero"] and better["low"] > 0
    mixed = paired_difference({0: 1.0, 1: 0.0, 2: 1.0}, {0: 0.0, 1: 1.0, 2: 0.5})
    assert not mixed["excludes_zero"]
    assert paired_difference({0: 1.0}, {1: 1.0})["mean"] is None  # no shared seed
    assert mean_interval([None, 0.2])["mean"] == 0.2 and mean_interval([0.1, 0.3])["mean"] == pytest.approx(0.2)

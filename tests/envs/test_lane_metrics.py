"""Lane-keeping metrics from per-step info dicts."""

from __future__ import annotations

import pytest

from lnn_control.envs.lane_keeping.metrics import aggregate, summarize_episode


def _info(offset: float, progress: float, departed: bool = False, **extra: object) -> dict:
    return {"lateral_offset": offset, "heading_error": -0.1, "progress": progress, "lane_departure": departed, **extra}


def test_clean_episode_is_a_success_with_mean_errors() -> None:
    infos = [_info(0.1, 1.0), _info(-0.3, 2.0), _info(0.2, 3.0, success=True)]
    summary = summarize_episode(infos, terminated=False, truncated=True)
    assert summary["success"] is True
    assert summary["departures"] == 0
    assert summary["distance_m"] == 3.0
    assert summary["mean_abs_lateral_error_m"] == pytest.approx(0.2)
    assert summary["max_abs_lateral_error_m"] == pytest.approx(0.3)
    assert summary["mean_abs_heading_error_rad"] == pytest.approx(0.1)


def test_departure_fails_and_counts_per_km() -> None:
    failed = summarize_episode([_info(0.1, 100.0), _info(0.4, 200.0, departed=True)], terminated=True, truncated=False)
    ok = summarize_episode([_info(0.0, 300.0, success=True)], terminated=False, truncated=True)
    assert failed["success"] is False and failed["departures"] == 1
    result = aggregate([failed, ok])
    assert result["success_rate"] == 0.5
    assert result["departures_per_km"] == pytest.approx(1 / 0.5)
    assert result["distance_m"] == 500.0
    # step-weighted: 2 steps of failed (0.1, 0.4) and 1 of ok (0.0)
    assert result["mean_abs_lateral_error_m"] == pytest.approx((0.25 * 2 + 0.0) / 3)


def test_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        summarize_episode([], False, True)
    with pytest.raises(ValueError):
        aggregate([])

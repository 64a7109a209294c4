"""Drone-forest metrics: per-episode summary and per-condition aggregate, by name."""

from __future__ import annotations

import json

import pytest

from lnn_control.envs.drone_forest.metrics import aggregate, summarize_episode


def _info(x: float, y: float, clearance: float, t: float, distance: float, **extra) -> dict:
    return {"x": x, "y": y, "z": 1.5, "clearance": clearance, "collision": False, "sim_time": t,
            "distance_to_target": distance, "success": False, "end_reason": "", **extra}


def test_successful_episode_summary() -> None:
    infos = [_info(0, 0, 2.0, 0.0, 5.0), _info(3, 0, 0.7, 1.5, 2.0), _info(3, 4, 1.2, 3.0, 0.8, success=True,
                                                                            end_reason="success")]
    s = summarize_episode(infos, terminated=True, truncated=False)
    assert s["success"] is True and s["collision"] is False
    assert s["time_to_target_s"] == 3.0
    assert s["path_length_m"] == pytest.approx(7.0)
    assert s["min_clearance_m"] == 0.7 and s["final_distance_m"] == 0.8 and s["steps"] == 3
    assert s["end_reason"] == "success"


def test_collision_and_timeout_summaries_and_aggregate() -> None:
    crash = summarize_episode(
        [_info(0, 0, 1.0, 0.0, 9.0), _info(1, 0, 0.1, 0.5, 8.0, collision=True, end_reason="collision")],
        terminated=True, truncated=False,
    )
    assert crash["success"] is False and crash["collision"] is True and crash["time_to_target_s"] is None
    timeout = summarize_episode([_info(0, 0, 3.0, 0.0, 9.0), _info(0, 2, 2.5, 60.0, 7.0, end_reason="time_limit")],
                                terminated=False, truncated=True)
    assert timeout["end_reason"] == "time_limit" and not timeout["collision"]
    good = summarize_episode([_info(0, 0, 2.0, 0.0, 2.0), _info(0, 1, 1.5, 4.0, 0.5, success=True)], True, False)
    agg = aggregate([crash, timeout, good])
    assert agg["episodes"] == 3
    assert agg["success_rate"] == pytest.approx(1 / 3) and agg["collision_rate"] == pytest.approx(1 / 3)
    assert agg["mean_time_to_target_s"] == 4.0
    assert agg["mean_path_length_m"] == pytest.approx((1 + 2 + 1) / 3)
    assert agg["min_clearance_m"] == 0.1 and agg["mean_min_clearance_m"] == pytest.approx((0.1 + 2.5 + 1.5) / 3)
    json.dumps(agg, allow_nan=False)  # JSON-able: no NaN for "no successful episode"
    assert aggregate([crash])["mean_time_to_target_s"] is None


def test_empty_input_raises() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        summarize_episode([], True, False)
    with pytest.raises(ValueError, match="no episodes"):
        aggregate([])

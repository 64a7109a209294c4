"""Which ``delay`` condition matches a measured camera→command latency (the end-to-end read of a run
log is in test_camera_runtime.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lnn_control.camera.latency import delay_condition, latency_report


@pytest.mark.parametrize("steps_late, condition", [
    (0.0, "clean"), (0.49, "clean"), (0.5, "delay:1"), (1.4, "delay:1"), (1.6, "delay:2"), (2.6, "delay:3"),
    (4.9, "delay:5"), (12.0, "delay:5"),
])
def test_nearest_delay_severity(steps_late: float, condition: str) -> None:
    assert delay_condition(steps_late) == condition


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"run log .*none.mcap does not exist"):
        latency_report(tmp_path / "none.mcap")
    with pytest.raises(ValueError, match=r"camera latency must be >= 0 s, got -0.01"):
        latency_report(tmp_path / "none.mcap", camera_latency_s=-0.01)

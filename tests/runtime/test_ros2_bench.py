"""``lnn-control bench ros2`` end to end on short runs: both loops ran, the report holds what the README quotes."""

from __future__ import annotations

import json

import pytest
from lnn_ros2_testkit import package_logging_kept

from lnn_control.cli import main


@pytest.mark.slow
def test_bench_ros2_reports_both_loops_and_the_watchdog(tmp_path, capsys):
    out = tmp_path / "bench_ros2.json"
    with package_logging_kept():
        assert main(["bench", "ros2", "--duration", "2", "--watchdog-trials", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    for loop in ("ros2", "sim"):
        steps = report[loop]["steps"]
        assert 90 <= steps + report[loop]["deadline_misses"] <= 102  # 2 s at 50 Hz
        assert report[loop]["latency_ms"]["count"] == steps and 0 < report[loop]["latency_ms"]["median"] < 20
    assert report["ros2"]["commands_seen_by_probe"] >= report["ros2"]["steps"]  # + the stop commands
    assert report["difference_ms"]["p99"] == pytest.approx(
        report["ros2"]["latency_ms"]["p99"] - report["sim"]["latency_ms"]["p99"])
    (trial,) = report["watchdog"]["trials"]
    assert 0 < trial["zero_after_last_frame_ms"] < 100 and trial["drive_commands_after_the_zero"] == 0
    assert "sense->act p50" in table and "camera stops -> zero twist" in table
